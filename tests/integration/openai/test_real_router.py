"""The endpoint in front of the real router (``router_svc``) over scripted model tiers.

The router's own cascade, cost ledger, tier hints and admission limits produce every answer and
every error here; only the models are scripted.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from openai_gateway import OpenAISettings
from openai_gateway.config import UpstreamSettings
from router_svc.config import RouterSettings
from router_svc.server import RouterApp, build_router
from tests.integration.openai.scripted_router import Endpoint
from tests.integration.openai.scripted_tiers import ScriptedTier, start_tier

USER = [{"role": "user", "content": "What is the capital of France?"}]


def _settings(small: str, large: str, **overrides: Any) -> RouterSettings:
    values: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "metrics_port": None, "grace_seconds": 1},
        "tiers": [
            {
                "name": "small",
                "endpoints": [small],
                "input_usd_per_mtok": 0.1,
                "output_usd_per_mtok": 0.2,
                "timeout_seconds": 10,
            },
            {
                "name": "large",
                "endpoints": [large],
                "input_usd_per_mtok": 1.0,
                "output_usd_per_mtok": 2.0,
                "timeout_seconds": 10,
            },
        ],
        "classifier": {"enabled": False},
        "resilience": {"retries": 0, "health_check_interval_seconds": 0},
    }
    values.update(overrides)
    return RouterSettings.load(None, **values)


@dataclass
class Stack:
    """A real router and the endpoint in front of it."""

    router: RouterApp
    endpoint: Endpoint

    def client(self, api_key: str = "k") -> openai.AsyncOpenAI:
        """An ``openai`` client without retries."""
        return openai.AsyncOpenAI(
            base_url=self.endpoint.base_url, api_key=api_key, max_retries=0, timeout=10
        )


async def _stack(settings: RouterSettings) -> Stack:
    router = build_router(settings)
    await router.start()
    endpoint = Endpoint(OpenAISettings(router=UpstreamSettings(target=f"127.0.0.1:{router.port}")))
    await endpoint.start()
    return Stack(router, endpoint)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def stacks() -> AsyncIterator[dict[str, Any]]:
    small, small_server, small_port = await start_tier("small")
    large, large_server, large_port = await start_tier("large")
    targets = (f"127.0.0.1:{small_port}", f"127.0.0.1:{large_port}")
    dead = f"127.0.0.1:{_dead_port()}"
    built = {
        "open": await _stack(_settings(*targets)),
        "strict": await _stack(
            _settings(
                *targets,
                policy={"allow_tier_hint": False},
                limits={"max_concurrent_streams": 1, "retry_after_seconds": 2},
            )
        ),
        "dead": await _stack(_settings(dead, dead)),
    }
    yield {**built, "small": small, "large": large}
    for stack in built.values():
        await stack.endpoint.stop()
        await stack.router.stop()
    await small_server.stop(0)
    await large_server.stop(0)


async def test_chat_served_by_the_small_tier_with_real_costs(stacks: dict[str, Any]) -> None:
    async with stacks["open"].client() as api:
        raw = await api.chat.completions.with_raw_response.create(
            model="tierroute-auto", messages=USER
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "small says hi"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    facts = (completion.model_extra or {})["tierroute"]
    # 10 prompt + 3 completion tokens: 0.1 and 0.2 USD/Mtok vs the large tier's 1.0 and 2.0.
    assert facts["cost_usd"] == pytest.approx(10 * 0.1e-6 + 3 * 0.2e-6)
    assert facts["baseline_cost_usd"] == pytest.approx(10 * 1.0e-6 + 3 * 2.0e-6)
    assert float(raw.headers["x-tierroute-savings-usd"]) == pytest.approx(facts["savings_usd"])
    assert raw.headers["x-tierroute-tier"] == "small"


async def test_low_confidence_escalates_and_the_caller_sees_only_the_large_answer(
    stacks: dict[str, Any],
) -> None:
    async with stacks["open"].client() as api:
        stream = await api.chat.completions.create(
            model="tierroute-auto",
            messages=[{"role": "user", "content": "a hard question"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "large says hi"
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    facts = (final.model_extra or {})["tierroute"]
    assert facts["escalated"] and facts["escalations"][0]["cause"] == "low_confidence"
    assert facts["tier_usage"][0] == {
        "tier": "small",
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "cost_usd": pytest.approx(10 * 0.1e-6 + 3 * 0.2e-6),
        "discarded": True,
    }


async def test_completions_models_and_pinning(stacks: dict[str, Any]) -> None:
    async with stacks["open"].client() as api:
        completion = await api.completions.create(model="large", prompt="Say hi", max_tokens=2)
        models = [m.id async for m in api.models.list()]
    assert completion.choices[0].text == "large says"
    assert completion.choices[0].finish_reason == "length"
    assert models == ["tierroute-auto", "small", "large"]


async def test_router_validation_is_400(stacks: dict[str, Any]) -> None:
    async with stacks["open"].client() as api:
        with pytest.raises(openai.BadRequestError) as caught:
            await api.chat.completions.create(
                model="tierroute-auto", messages=USER, max_tokens=5000
            )
        assert caught.value.param == "max_tokens"
        with pytest.raises(openai.BadRequestError) as caught:
            await api.chat.completions.create(
                model="tierroute-auto",
                messages=USER,
                extra_body={"tierroute": {"max_cost_usd": 0.0}},
            )
        assert caught.value.code == "failed_precondition"


async def test_tier_hint_refused_is_403_and_overload_is_429(stacks: dict[str, Any]) -> None:
    strict: Stack = stacks["strict"]
    async with strict.client() as api:
        with pytest.raises(openai.PermissionDeniedError):
            await api.chat.completions.create(model="large", messages=USER)
        slow = asyncio.create_task(
            api.chat.completions.create(
                model="tierroute-auto",
                messages=[{"role": "user", "content": "slow"}],
            )
        )
        await asyncio.sleep(0.3)  # the slow stream holds the router's only slot
        with pytest.raises(openai.RateLimitError) as caught:
            await api.chat.completions.create(model="tierroute-auto", messages=USER)
        assert caught.value.response.headers["retry-after"] == "2"
        assert (await slow).choices[0].message.content == "small says hi"


async def test_deadline_is_504_and_the_tier_stream_is_cancelled(stacks: dict[str, Any]) -> None:
    small: ScriptedTier = stacks["small"]
    cancelled = small.cancelled
    async with stacks["open"].client() as api:
        with pytest.raises(openai.InternalServerError) as caught:
            await api.chat.completions.create(
                model="tierroute-auto",
                messages=[{"role": "user", "content": "slow"}],
                extra_headers={"x-tierroute-timeout-seconds": "0.6"},
            )
    assert caught.value.status_code == 504
    for _ in range(40):
        if small.cancelled > cancelled:
            break
        await asyncio.sleep(0.05)
    assert small.cancelled == cancelled + 1


async def test_no_tier_reachable_is_503(stacks: dict[str, Any]) -> None:
    async with stacks["dead"].client() as api:
        with pytest.raises(openai.InternalServerError) as caught:
            await api.chat.completions.create(model="tierroute-auto", messages=USER)
    assert caught.value.status_code == 503
