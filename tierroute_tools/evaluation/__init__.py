"""Offline evaluation: replay routing policies on recorded outcomes, and live runs on the tiers.

Modules (all under ``tierroute_tools.evaluation``):

- ``prices``: prices per model and the cost of each call.
- ``policies`` and ``replay``: the routing policies (classifier, rules + classifier, random,
  always-weak/strong, oracle) replayed on per-prompt outcomes with RouteLLM's metrics.
- ``crossbench``: heads trained on some benchmarks, reported on another.
- ``tasks``, ``live`` and ``live_report``: prompts with gold answers sent through a
  running router, scored and summarised.
- ``fit_confidence``: the confidence calibration and fallback threshold fitted on one split of
  live results and reported on another.
- ``stream``, ``stream_run``, ``stream_report``, ``stream_judges``, ``stream_tables`` and
  ``stream_plots``: a task stream in order through one fresh router per policy (static,
  fitted, controller), reported per window against the pinned tiers, with the cost of
  measuring quality and the judges' agreement with gold.
- ``plots`` and ``tables``: PNGs and Markdown.

Serving code never imports this package (it brings matplotlib and scikit-learn).
"""
