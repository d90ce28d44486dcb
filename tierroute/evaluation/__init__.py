"""Offline evaluation: replay routing policies on recorded outcomes, and live runs on the tiers.

- :mod:`~tierroute.evaluation.prices`: prices per model and the cost of each call.
- :mod:`~tierroute.evaluation.policies` and :mod:`~tierroute.evaluation.replay`: the routing
  policies (classifier, rules + classifier, random, always-weak/strong, oracle) replayed on
  per-prompt outcomes with RouteLLM's metrics.
- :mod:`~tierroute.evaluation.crossbench`: heads trained on some benchmarks, reported on another.
- :mod:`~tierroute.evaluation.answers`, :mod:`~tierroute.evaluation.tasks`,
  :mod:`~tierroute.evaluation.live` and :mod:`~tierroute.evaluation.live_report`: prompts with
  gold answers sent through a running router, scored and summarised.
- :mod:`~tierroute.evaluation.fit_confidence`: the confidence calibration and fallback threshold
  fitted on one split of live results and reported on another.
- :mod:`~tierroute.evaluation.plots` and :mod:`~tierroute.evaluation.tables`: PNGs and Markdown.

Serving code never imports this package (it brings matplotlib and scikit-learn).
"""
