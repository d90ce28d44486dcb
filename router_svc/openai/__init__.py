"""OpenAI-compatible HTTP front door of the router (``python -m router_svc.openai``).

A small separate process: Starlette on uvicorn, translating ``/v1/chat/completions``,
``/v1/completions`` and ``/v1/models`` to ``tierroute.v1.RouterService`` over gRPC. It imports
nothing else of ``router_svc`` and talks to the router over the network only.
"""

from router_svc.openai.app import create_app
from router_svc.openai.config import OpenAISettings

__all__ = ["OpenAISettings", "create_app"]
