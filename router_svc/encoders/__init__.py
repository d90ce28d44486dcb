"""Prompt encoders of the router's classifier beyond the ONNX MiniLM (:mod:`router_svc.classifier`).

- :mod:`.static`: a static token-embedding table distilled from MiniLM (mean of the prompt's
  token vectors, L2-normalised) and the logistic head, in numpy: microseconds per prompt, so it
  runs on the event loop with no thread hop. The default encoder; its :meth:`StaticEmbedding.embed`
  is also the cheap prompt embedding other router components (the learned start tier) read.

What does not belong here: the decision (``router_svc.policy``) and training
(``tierroute_tools.classifier_training``).
"""
