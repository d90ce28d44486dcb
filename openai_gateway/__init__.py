"""OpenAI-compatible HTTP front door of the router (``python -m openai_gateway``).

A small separate process: Starlette on uvicorn, translating ``/v1/chat/completions``,
``/v1/completions`` and ``/v1/models`` to ``tierroute.v1.RouterService`` over gRPC. It imports
nothing else of ``router_svc`` and talks to the router over the network only.
"""

from openai_gateway.app import create_app
from openai_gateway.config import OpenAISettings

__all__ = ["OpenAISettings", "create_app"]
