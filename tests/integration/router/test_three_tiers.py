"""The real router process over a chain of three scripted tiers (real gRPC on loopback).

``python -m router_svc`` runs with rules and classifier off, so every request starts on the
cheapest tier and only the tiers' own confidence moves it up: ``tiny`` is unsure of prompts
containing "hard" or "tricky", ``small`` only of "hard", ``large`` of nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.integration.router.scripted_chain import PROMPT_TOKENS, ServedTier, serve_tier
from tierroute.launch import ServiceProcess, free_port, launch_module
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
PRICES = {"tiny": (0.02, 0.06), "small": (0.16, 0.48), "large": (0.50, 1.50)}
R = router_service_pb2


@dataclass
class Chain:
    """Three scripted tiers and a router process in front of them."""

    tiers: dict[str, ServedTier]
    router: ServiceProcess


async def start_router(logs: Path, endpoints: dict[str, str]) -> ServiceProcess:
    """``python -m router_svc`` over ``endpoints`` (tier name -> address), cheapest first."""
    config = logs / "router.yaml"
    config.write_text(
        json.dumps(
            {
                "classifier": {"enabled": False},
                "rules": {"enabled": False},
                "tiers": [
                    {
                        "name": name,
                        "endpoints": [address],
                        "input_usd_per_mtok": PRICES[name][0],
                        "output_usd_per_mtok": PRICES[name][1],
                        "timeout_seconds": 10,
                    }
                    for name, address in endpoints.items()
                ],
                "resilience": {"retries": 0, "health_check_interval_seconds": 1},
            }
        )
    )
    # In a thread: the scripted tiers answer the router's health checks on this event loop.
    return await asyncio.to_thread(
        launch_module,
        "router_svc",
        ["--config", str(config)],
        cwd=ROOT,
        log_path=logs / "router.log",
        timeout_seconds=60,
    )


@pytest.fixture(scope="module")
async def chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    tiers = {
        "tiny": await serve_tier("tiny", frozenset({"hard", "tricky"})),
        "small": await serve_tier("small", frozenset({"hard"})),
        "large": await serve_tier("large", frozenset()),
    }
    logs = tmp_path_factory.mktemp("three-tiers")
    router = await start_router(logs, {name: tier.address for name, tier in tiers.items()})
    try:
        yield Chain(tiers, router)
    finally:
        await asyncio.to_thread(router.stop)
        for tier in tiers.values():
            await tier.server.stop(None)


async def generate(
    address: str, text: str, mode: R.FallbackMode
) -> list[R.RouterServiceGenerateResponse]:
    """Every event of one routed Generate call."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        request = R.RouterServiceGenerateRequest(
            prompt=common_pb2.Prompt(text=text), options=R.RouteOptions(fallback_mode=mode)
        )
        return [event async for event in stub.Generate(request, timeout=20)]


def kept_text(events: list[R.RouterServiceGenerateResponse]) -> str:
    """The caller's text after dropping what each escalation discards."""
    kept: list[str] = []
    for event in events:
        if event.HasField("escalated"):
            assert len(kept) == event.escalated.discarded_tokens
            kept = []
        elif event.HasField("delta"):
            kept.append(event.delta.text)
    return "".join(kept)


def price(tier: str, prompt: int, completion: int) -> float:
    return (prompt * PRICES[tier][0] + completion * PRICES[tier][1]) / 1e6


MODES = [R.FALLBACK_MODE_BUFFERED, R.FALLBACK_MODE_STREAMING, R.FALLBACK_MODE_EARLY_WINDOW]


@pytest.mark.parametrize("mode", MODES)
async def test_unsure_on_tiny_and_small_ends_on_large(chain: Chain, mode: R.FallbackMode) -> None:
    events = await generate(chain.router.address, "a hard one", mode)
    assert events[0].routed.decision.tier == "tiny"
    steps = [
        (e.escalated.from_tier, e.escalated.to_tier, e.escalated.cause)
        for e in events
        if e.HasField("escalated")
    ]
    low = R.ESCALATION_CAUSE_LOW_CONFIDENCE
    assert steps == [("tiny", "small", low), ("small", "large", low)]
    assert kept_text(events) == "large answers here"
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated, finished.degraded) == ("large", True, False)
    usage = [
        (u.tier, u.usage.prompt_tokens, u.usage.completion_tokens, u.discarded)
        for u in finished.tier_usage
    ]
    assert usage == [
        ("tiny", PROMPT_TOKENS, 3, True),
        ("small", PROMPT_TOKENS, 3, True),
        ("large", PROMPT_TOKENS, 3, False),
    ]
    # Cost counts every tier's tokens; the baseline is the served answer on the last tier.
    assert finished.cost_usd == pytest.approx(sum(price(*row[:3]) for row in usage))
    assert finished.baseline_cost_usd == pytest.approx(price("large", PROMPT_TOKENS, 3))
    assert finished.savings_usd == pytest.approx(finished.baseline_cost_usd - finished.cost_usd)
    assert finished.savings_usd < 0  # two wasted answers cost more than going large at once


async def test_unsure_only_on_tiny_ends_on_small(chain: Chain) -> None:
    asked_large = len(chain.tiers["large"].model.prompts)
    events = await generate(chain.router.address, "a tricky one", R.FALLBACK_MODE_BUFFERED)
    steps = [
        (e.escalated.from_tier, e.escalated.to_tier) for e in events if e.HasField("escalated")
    ]
    assert steps == [("tiny", "small")]
    assert kept_text(events) == "small answers here"
    finished = events[-1].finished
    assert finished.served_tier == "small"
    assert [(u.tier, u.discarded) for u in finished.tier_usage] == [
        ("tiny", True),
        ("small", False),
    ]
    assert finished.baseline_cost_usd == pytest.approx(price("large", PROMPT_TOKENS, 3))
    assert 0 < finished.cost_usd < finished.baseline_cost_usd
    assert len(chain.tiers["large"].model.prompts) == asked_large  # never asked


async def test_a_sure_answer_stays_on_tiny(chain: Chain) -> None:
    events = await generate(chain.router.address, "an easy one", R.FALLBACK_MODE_BUFFERED)
    assert not any(e.HasField("escalated") for e in events)
    finished = events[-1].finished
    assert [u.tier for u in finished.tier_usage] == ["tiny"]
    assert finished.savings_usd > 0


async def test_a_dead_middle_tier_is_skipped(
    chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A second router whose middle tier points at a port nothing listens on.
    endpoints = {name: tier.address for name, tier in chain.tiers.items()}
    endpoints["small"] = f"127.0.0.1:{free_port()}"
    router = await start_router(tmp_path_factory.mktemp("dead-middle"), endpoints)
    try:
        events = await generate(router.address, "a tricky one", R.FALLBACK_MODE_BUFFERED)
    finally:
        await asyncio.to_thread(router.stop)
    steps = [
        (e.escalated.from_tier, e.escalated.to_tier, e.escalated.cause)
        for e in events
        if e.HasField("escalated")
    ]
    assert steps == [
        ("tiny", "small", R.ESCALATION_CAUSE_LOW_CONFIDENCE),
        ("small", "large", R.ESCALATION_CAUSE_TIER_ERROR),
    ]
    assert kept_text(events) == "large answers here"
    finished = events[-1].finished
    # The answer comes from a larger tier than wanted: not degraded in the contract's sense.
    assert (finished.served_tier, finished.degraded) == ("large", False)
    assert [(u.tier, u.usage.completion_tokens, u.discarded) for u in finished.tier_usage] == [
        ("tiny", 3, True),
        ("small", 0, True),
        ("large", 3, False),
    ]
