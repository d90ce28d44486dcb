"""A model-service replica SIGKILLed after its tokens reached the caller, in each cascade mode.

Callers in ``STREAMING`` and ``EARLY_WINDOW`` accept retraction: the router fails over to the
large tier with ``Escalated(TIER_ERROR)`` carrying the count of tokens to discard, and the
answer completes within the caller's deadline. ``DISABLED`` has no retraction contract: the
stream ends with a clean UNAVAILABLE. (``BUFFERED`` holds the tokens, so nothing reached the
caller: ``test_replica_kill.py``.) Real processes: the scripted model service and the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from tests.integration.faults.conftest import (
    Launcher,
    ModelProcess,
    Outcomes,
    RouterProcess,
    router_stub,
    serving,
)
from tests.integration.faults.helpers import (
    DISABLED,
    STREAMING,
    CallResult,
    StreamWatch,
    call,
    request,
    wait_for,
)
from tierroute.v1 import router_service_pb2

EARLY_WINDOW = router_service_pb2.FALLBACK_MODE_EARLY_WINDOW
TOKENS = 40
TOKEN_DELAY = 0.05
LARGE_TOKENS = 6
WINDOW = 4
DEADLINE = 10.0
CONCURRENT = 16


@dataclass
class Tiers:
    """One small replica, the large tier, and a router with a short early window."""

    small: ModelProcess
    large: ModelProcess
    router: RouterProcess


@pytest.fixture(scope="module")
def tiers(launcher: Launcher) -> Iterator[Tiers]:
    small = launcher.model("fo-small", tokens=TOKENS, token_delay=TOKEN_DELAY)
    large = launcher.model("fo-large", "large", tokens=LARGE_TOKENS)
    router = launcher.router(
        "router-fo",
        {"small": [small.address], "large": [large.address]},
        policy={"early_window_tokens": WINDOW},
    )
    launcher.ready()
    yield Tiers(small, large, router)


async def small_back(tiers: Tiers) -> None:
    """The small replica running and its circuit closed again (a previous test killed it)."""
    if tiers.small.process.process.poll() is not None:
        await asyncio.to_thread(tiers.small.restart)
    # Closed, not half-open: a half-open circuit lets one probe call through, not CONCURRENT;
    # a call served by small is that probe and closes it.
    circuit = f'circuit_state{{endpoint="{tiers.small.address}",tier="small"}}'
    async with router_stub(tiers.router.address) as stub:
        for _ in range(50):
            if tiers.router.metric(circuit) == 0:
                return
            probe = await call(stub, request(), DEADLINE)
            assert probe.code == grpc.StatusCode.OK, probe.details
            await asyncio.sleep(0.2)
    raise AssertionError("the small tier's circuit did not close again within 10 s")


async def kill_mid_stream(tiers: Tiers, mode: int, callers: int = 1) -> list[CallResult]:
    """``callers`` concurrent calls; the small replica is SIGKILLed once each has tokens."""
    await small_back(tiers)
    watch = StreamWatch()
    async with router_stub(tiers.router.address) as stub:
        pending = [
            asyncio.create_task(call(stub, request(mode=mode), DEADLINE, watch))
            for _ in range(callers)
        ]
        await wait_for(watch, callers)
        await asyncio.sleep(3 * TOKEN_DELAY)  # a few more tokens reach each caller
        tiers.small.kill()
        return list(await asyncio.gather(*pending))


def assert_failed_over(result: CallResult) -> int:
    """The caller got small's tokens, an Escalated(TIER_ERROR) retracting exactly those, then
    the large tier's whole answer; returns how many tokens were retracted."""
    assert result.code == grpc.StatusCode.OK, result.details
    kinds = result.kinds
    assert kinds[0] == "routed" and kinds[-1] == "finished"
    (escalated,) = result.escalations
    assert escalated.cause == router_service_pb2.ESCALATION_CAUSE_TIER_ERROR
    assert (escalated.from_tier, escalated.to_tier) == ("small", "large")
    assert "reached the caller" in escalated.reason and "UNAVAILABLE" in escalated.reason
    at = kinds.index("escalated")
    before = sum(len(e.delta.token_ids) for e in result.events[:at] if e.HasField("delta"))
    after = sum(len(e.delta.token_ids) for e in result.events[at:] if e.HasField("delta"))
    assert 0 < before < TOKENS
    assert escalated.discarded_tokens == before
    assert after == LARGE_TOKENS
    finished = result.finished
    assert (finished.served_tier, finished.escalated, finished.degraded) == ("large", True, False)
    small, large = finished.tier_usage
    assert (small.tier, small.discarded, large.tier, large.discarded) == (
        "small",
        True,
        "large",
        False,
    )
    assert small.usage.completion_tokens >= before  # the retracted tokens are paid for
    assert small.usage.prompt_tokens > 0  # so is its prompt, reported before its first token
    assert result.seconds < DEADLINE / 2
    return before


@pytest.mark.parametrize("mode", [STREAMING, EARLY_WINDOW], ids=["streaming", "early_window"])
async def test_a_replica_killed_mid_stream_fails_over_to_the_large_tier(
    tiers: Tiers, outcomes: Outcomes, mode: int
) -> None:
    (result,) = await kill_mid_stream(tiers, mode)
    retracted = assert_failed_over(result)
    if mode == EARLY_WINDOW:
        assert retracted > WINDOW  # the window had passed: the tokens were the caller's
    assert await serving(tiers.router.address)
    name = "STREAMING" if mode == STREAMING else f"EARLY_WINDOW (K={WINDOW})"
    outcomes.record(
        f"small replica SIGKILLed after tokens reached the caller ({name})",
        f"OK in {result.seconds:.2f} s: Escalated(TIER_ERROR, discard {retracted}), "
        f"large's answer served; retracted tokens and small's prompt billed",
    )


async def test_every_concurrent_caller_fails_over(tiers: Tiers, outcomes: Outcomes) -> None:
    results = await kill_mid_stream(tiers, STREAMING, callers=CONCURRENT)
    retracted = [assert_failed_over(result) for result in results]
    outcomes.record(
        f"small replica SIGKILLed under {CONCURRENT} concurrent STREAMING callers",
        f"{CONCURRENT}/{CONCURRENT} OK from large after Escalated(TIER_ERROR) "
        f"(discarded {min(retracted)}-{max(retracted)} tokens), slowest "
        f"{max(r.seconds for r in results):.2f} s",
    )


async def test_disabled_mode_ends_cleanly_without_retraction(
    tiers: Tiers, outcomes: Outcomes
) -> None:
    (result,) = await kill_mid_stream(tiers, DISABLED)
    assert result.code == grpc.StatusCode.UNAVAILABLE
    assert "tier small failed after" in result.details and "not retried" in result.details
    assert "DISABLED" in result.details
    assert result.kinds[-1] == "delta" and result.escalations == []
    assert result.seconds < DEADLINE / 2
    assert await serving(tiers.router.address)
    outcomes.record(
        "small replica SIGKILLed after tokens reached the caller (DISABLED)",
        f'UNAVAILABLE after {result.deltas} tokens, {result.seconds:.2f} s: "{result.details}"',
    )
