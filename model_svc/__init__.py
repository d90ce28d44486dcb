"""The model service: one model tier served as ``tierroute.v1.ModelService`` over vLLM.

Run with ``python -m model_svc --tier small``. Layout: ``config`` (settings), ``engines/``
(the engine protocol and the vLLM implementation), ``confidence`` (the score), ``validation``
and ``generation`` (domain logic), ``servicer`` (the gRPC adapter), ``metrics``, ``server``
(wiring and lifecycle).
"""
