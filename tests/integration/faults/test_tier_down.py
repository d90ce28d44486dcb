"""A whole tier down: the other tier serves, degraded where it must be, and says why.

The large tier down: requests the small tier is unsure of (they would escalate) are answered
by the small tier with ``degraded=true`` and a reason; confident ones are untouched. The small
tier down: the large tier serves everything. Both down: a fast UNAVAILABLE. Each tier comes
back into service once its process is restarted.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.integration.faults.conftest import (
    Launcher,
    Outcomes,
    Pair,
    router_stub,
    serving,
)
from tests.integration.faults.helpers import BUFFERED, STREAMING, call, list_tiers, request
from tierroute.v1 import router_service_pb2

DEADLINE = 10.0
FAST = 3.0
"""A tier being down must not make the caller wait: every answer here comes within this."""
HARD = "A hard question: what is the answer?"
EASY = "What is the answer?"


@pytest.fixture(scope="module")
def pair(launcher: Launcher) -> Pair:
    return launcher.pair("down", unsure=["hard"])


async def healthy_again(pair: Pair, tier: str) -> None:
    """Until the router's circuit for ``tier`` lets calls through again."""
    async with router_stub(pair.router.address) as stub:
        for _ in range(100):
            if (await list_tiers(stub))[tier].healthy_endpoints == 1:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"tier {tier} not healthy again within 10 s")


async def test_both_tiers_up_hard_prompts_escalate(pair: Pair) -> None:
    """The baseline the other scenarios depart from."""
    async with router_stub(pair.router.address) as stub:
        hard = await call(stub, request(HARD), DEADLINE)
        easy = await call(stub, request(EASY), DEADLINE)
    assert (hard.finished.served_tier, hard.finished.escalated) == ("large", True)
    assert (easy.finished.served_tier, easy.finished.escalated) == ("small", False)


@pytest.mark.parametrize("mode", [BUFFERED, STREAMING], ids=["buffered", "streaming"])
async def test_large_tier_down_degrades_to_the_small_tier(
    pair: Pair, mode: int, outcomes: Outcomes
) -> None:
    pair.large.kill()
    try:
        async with router_stub(pair.router.address) as stub:
            hard = await call(stub, request(HARD, mode=mode), DEADLINE)
            easy = await call(stub, request(EASY, mode=mode), DEADLINE)
            assert await serving(pair.router.address)
    finally:
        await asyncio.to_thread(pair.large.restart)
    assert hard.code == grpc.StatusCode.OK, hard.details
    finished = hard.finished
    assert (finished.served_tier, finished.degraded) == ("small", True)
    assert "large" in finished.degraded_reason and "unavailable" in finished.degraded_reason
    assert finished.confidence.score < 0.65  # the unconfident answer, served as it is
    # The caller is never told of an escalation that fell through.
    assert hard.escalations == []
    served, failed = finished.tier_usage
    assert (served.tier, served.discarded, failed.tier, failed.discarded) == (
        "small",
        False,
        "large",
        True,
    )
    # The failed large call is listed but costs nothing: it never took the prompt.
    assert (failed.usage.prompt_tokens, failed.usage.completion_tokens) == (0, 0)
    assert failed.cost_usd == 0
    assert hard.seconds < FAST
    assert easy.code == grpc.StatusCode.OK, easy.details
    assert (easy.finished.served_tier, easy.finished.degraded) == ("small", False)
    assert easy.seconds < FAST
    await healthy_again(pair, "large")
    name = "BUFFERED" if mode == BUFFERED else "STREAMING"
    outcomes.record(
        f"large tier SIGKILLed, unsure prompt ({name})",
        f'OK in {hard.seconds:.2f} s from small, degraded=true, "{finished.degraded_reason}"; '
        f"confident prompt OK in {easy.seconds:.2f} s, not degraded",
    )


async def test_small_tier_down_the_large_tier_serves_everything(
    pair: Pair, outcomes: Outcomes
) -> None:
    pair.small.kill()
    try:
        async with router_stub(pair.router.address) as stub:
            results = [
                await call(stub, request(text, mode=mode), DEADLINE)
                for text in (EASY, HARD, EASY)
                for mode in (BUFFERED, STREAMING)
            ]
            assert await serving(pair.router.address)
    finally:
        await asyncio.to_thread(pair.small.restart)
    for result in results:
        assert result.code == grpc.StatusCode.OK, result.details
        assert result.seconds < FAST
        finished = result.finished
        assert (finished.served_tier, finished.degraded) == ("large", False)
        (escalated,) = result.escalations
        assert (escalated.from_tier, escalated.to_tier) == ("small", "large")
        assert escalated.cause == router_service_pb2.ESCALATION_CAUSE_TIER_ERROR
        assert escalated.reason.startswith("tier small failed before its first token")
        assert escalated.discarded_tokens == 0
    await healthy_again(pair, "small")
    async with router_stub(pair.router.address) as stub:
        back = await call(stub, request(EASY), DEADLINE)
    assert (back.finished.served_tier, back.finished.escalated) == ("small", False)
    outcomes.record(
        "small tier SIGKILLed",
        f"{len(results)}/{len(results)} OK from large (BUFFERED and STREAMING), each with "
        f"Escalated(TIER_ERROR), {max(r.seconds for r in results):.2f} s at most; "
        "small serves again after its restart",
    )


async def test_both_tiers_down_is_a_fast_unavailable(pair: Pair, outcomes: Outcomes) -> None:
    pair.small.kill()
    pair.large.kill()
    try:
        async with router_stub(pair.router.address) as stub:
            result = await call(stub, request(HARD), DEADLINE)
            assert await serving(pair.router.address)
    finally:
        await asyncio.to_thread(pair.small.restart)
        await asyncio.to_thread(pair.large.restart)
    assert result.code == grpc.StatusCode.UNAVAILABLE
    assert result.details.startswith("no tier could serve the request")
    assert "small" in result.details and "large" in result.details
    assert result.seconds < FAST
    outcomes.record(
        "both tiers SIGKILLed",
        f'UNAVAILABLE in {result.seconds:.2f} s: "{result.details[:60]}..."',
    )
