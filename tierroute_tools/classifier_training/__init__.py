"""Offline pipeline of the router's classifier: export, features, training, calibration.

``tierroute classifier build`` runs it end to end into ``$TIERROUTE_CACHE_DIR/classifier/``.
torch and transformers are imported only by :mod:`.export`; everything else needs numpy,
onnx, onnxruntime, tokenizers and scikit-learn. Serving (:mod:`router_svc.classifier`) never
imports this package; this package reuses serving's tokenisation so features match serving.
"""
