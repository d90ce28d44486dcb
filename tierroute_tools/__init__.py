"""tierroute's offline tools: the ``tierroute`` CLI, the local platform launcher, model
preparation, classifier training and evaluation.

The top layer: it may import the services (``router_svc``, ``model_svc``), the HTTP gateway and
the shared runtime (:mod:`tierroute`); nothing below imports it. Torch, scikit-learn and
matplotlib are imported here only, never at serving time.
"""
