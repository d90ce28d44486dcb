"""What a Generate call spends, over real gRPC in front of scripted fake model services: the
cost cap across escalation, the prompt paid for on every path, mid-stream failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.unit.router.conftest import Stack
from tests.unit.router.routers import PRICES
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb

Event = rpb.RouterServiceGenerateResponse
TEXT = "Tell me about Roman aqueducts."
MAX_TOKENS = 16


def request(
    mode: Any = rpb.FALLBACK_MODE_BUFFERED, **options: Any
) -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=TEXT),
        sampling=common_pb2.SamplingParams(max_tokens=MAX_TOKENS),
        options=rpb.RouteOptions(fallback_mode=mode, **options),
    )


def worst_call(tier: str) -> float:
    """One call's worst case as the router prices it: prompt bytes in, max_tokens out."""
    price_in, price_out = PRICES[tier]
    return (len(TEXT.encode()) * price_in + MAX_TOKENS * price_out) / 1e6


async def collect(stub: Any, req: rpb.RouterServiceGenerateRequest) -> list[Event]:
    return [event async for event in stub.Generate(req, timeout=10)]


def prompt_tokens_charged(stack: Stack, tier: str) -> float:
    value = stack.app.registry.get_sample_value(
        "tierroute_router_tokens_total", {"tier": tier, "kind": "prompt"}
    )
    return value or 0.0


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# The cost cap holds across escalation


async def test_the_cap_stops_escalation_before_a_tier_that_would_break_it(fresh: Stack) -> None:
    fresh.small.model.behaviour.confidence = 0.2
    cap = worst_call("small") + worst_call("large") / 2
    events = await collect(fresh.stub, request(max_cost_usd=cap))
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated, finished.degraded) == ("small", False, True)
    assert "max_cost_usd" in finished.degraded_reason and "large" in finished.degraded_reason
    assert fresh.large.model.calls == []
    assert finished.cost_usd <= cap


async def test_a_cap_covering_the_chain_lets_the_request_escalate(fresh: Stack) -> None:
    fresh.small.model.behaviour.confidence = 0.2
    cap = worst_call("small") + worst_call("large")
    events = await collect(fresh.stub, request(max_cost_usd=cap))
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated, finished.degraded) == ("large", True, False)


async def test_a_cap_below_the_routed_tier_is_refused(fresh: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(fresh.stub, request(max_cost_usd=worst_call("small") * 0.9))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert fresh.small.model.calls == []


# The prompt is paid for on every path


async def test_a_caller_cancelling_after_its_first_token_pays_for_the_prompt(fresh: Stack) -> None:
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(200))
    fresh.small.model.behaviour.token_delay = 0.02
    before = prompt_tokens_charged(fresh, "small")
    call = fresh.stub.Generate(request(mode=rpb.FALLBACK_MODE_STREAMING), timeout=30)
    async for event in call:
        if event.WhichOneof("event") == "delta":
            break
    call.cancel()
    await eventually(lambda: prompt_tokens_charged(fresh, "small") > before)
    assert prompt_tokens_charged(fresh, "small") - before == 12


async def test_an_expired_deadline_before_the_first_token_pays_for_the_prompt(
    fresh: Stack,
) -> None:
    fresh.small.model.behaviour.first_token_delay = 2.0
    before = prompt_tokens_charged(fresh, "small")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [e async for e in fresh.stub.Generate(request(), timeout=0.5)]
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: prompt_tokens_charged(fresh, "small") > before)
    assert prompt_tokens_charged(fresh, "small") - before == 12


async def test_a_tier_failing_before_its_first_token_pays_for_the_prompt(fresh: Stack) -> None:
    fresh.small.model.behaviour.fail_code = grpc.StatusCode.INTERNAL  # not retried
    events = await collect(fresh.stub, request())
    finished = events[-1].finished
    assert finished.served_tier == "large"
    failed = finished.tier_usage[0]
    assert (failed.tier, failed.discarded) == ("small", True)
    assert (failed.usage.prompt_tokens, failed.usage.completion_tokens) == (12, 0)
    assert failed.cost_usd == pytest.approx(12 * PRICES["small"][0] / 1e6)


# Mid-stream failover where the caller accepts retraction


@pytest.mark.parametrize("mode", [rpb.FALLBACK_MODE_STREAMING, rpb.FALLBACK_MODE_EARLY_WINDOW])
async def test_a_tier_dying_mid_stream_escalates_with_the_discarded_count(
    fresh: Stack, mode: Any
) -> None:
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(30))
    fresh.small.model.behaviour.fail_code = grpc.StatusCode.INTERNAL
    fresh.small.model.behaviour.fail_after = 20  # past the early window (16 tokens)
    events = await collect(fresh.stub, request(mode=mode))
    kinds = [str(e.WhichOneof("event")) for e in events]
    assert kinds[0] == "routed" and kinds[-1] == "finished"
    (escalated,) = [e.escalated for e in events if e.WhichOneof("event") == "escalated"]
    assert escalated.cause == rpb.ESCALATION_CAUSE_TIER_ERROR
    assert (escalated.from_tier, escalated.to_tier) == ("small", "large")
    assert escalated.discarded_tokens == 20
    index = kinds.index("escalated")
    assert sum(len(e.delta.token_ids) for e in events[:index] if e.HasField("delta")) == 20
    after = "".join(e.delta.text for e in events[index:] if e.HasField("delta"))
    assert after == "Paris is the capital."
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated) == ("large", True)
    assert [(u.tier, u.usage.completion_tokens, u.discarded) for u in finished.tier_usage] == [
        ("small", 20, True),
        ("large", 5, False),
    ]
