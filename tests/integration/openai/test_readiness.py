"""Readiness against a router with API keys on: ListTiers needs a key the endpoint lacks."""

from __future__ import annotations

import httpx

from openai_gateway.config import OpenAISettings, UpstreamSettings
from tests.integration.openai.scripted_router import Endpoint, ScriptedRouter, start_router


async def test_a_router_that_needs_keys_is_ready_by_its_health_service() -> None:
    servicer = ScriptedRouter(require_key=True)
    bootstrap = await start_router(servicer)
    settings = OpenAISettings(
        router=UpstreamSettings(target=f"127.0.0.1:{bootstrap.port}", timeout_seconds=5)
    )
    endpoint = Endpoint(settings)
    await endpoint.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.port}") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ok"
            assert servicer.list_calls == 1  # it asked, was refused, then asked health
            # Draining: the router reports NOT_SERVING, and the endpoint is not ready.
            await bootstrap.set_serving(False)
            drained = await http.get("/readyz")
            assert drained.status_code == 503
            assert drained.json()["status"] == "router not serving"
    finally:
        await endpoint.stop()
        await bootstrap.stop()
