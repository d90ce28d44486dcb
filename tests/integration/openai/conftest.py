"""Fixtures: one scripted router and one endpoint for the whole session, and openai clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from openai_gateway import OpenAISettings
from openai_gateway.config import UpstreamSettings
from tests.integration.openai.scripted_router import Endpoint, ScriptedRouter, start_router


@pytest.fixture(scope="session")
async def scripted() -> AsyncIterator[tuple[ScriptedRouter, int]]:
    servicer = ScriptedRouter()
    bootstrap = await start_router(servicer)
    yield servicer, bootstrap.port
    await bootstrap.stop()


@pytest.fixture(scope="session")
async def endpoint(scripted: tuple[ScriptedRouter, int]) -> AsyncIterator[Endpoint]:
    _, port = scripted
    settings = OpenAISettings(
        router=UpstreamSettings(target=f"127.0.0.1:{port}", timeout_seconds=10)
    )
    server = Endpoint(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(endpoint: Endpoint) -> AsyncIterator[openai.AsyncOpenAI]:
    # No client retries: each test sees exactly what the endpoint answered.
    async with openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key="good", max_retries=0, timeout=10
    ) as api:
        yield api
