"""The router service: picks the cheapest tier that can answer, streams its answer, escalates.

Run it with ``python -m router_svc [--config FILE] [--port N] [--metrics-port N]``; the wiring
is in :mod:`router_svc.server`, the configuration in :mod:`router_svc.config`.
"""
