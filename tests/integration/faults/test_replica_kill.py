"""A model-service replica SIGKILLed mid-stream, with two replicas of the small tier.

Before the replica's first token the router retries on the other replica (the caller never
knows); after tokens reached the caller it ends the stream with a clean UNAVAILABLE naming the
tier (a retry would duplicate text). In BUFFERED mode nothing of the dead replica's answer was
forwarded, so the large tier answers instead. The router itself stays SERVING throughout.
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
    BUFFERED,
    STREAMING,
    StreamWatch,
    call,
    eventually,
    list_tiers,
    request,
    wait_for,
)
from tierroute.v1 import router_service_pb2

TOKENS = 20
TOKEN_DELAY = 0.05
FIRST_TOKEN_DELAY = 0.6
"""A prefill long enough to kill a replica inside it."""
DEADLINE = 10.0


@dataclass
class Replicas:
    """Two small replicas and the large tier behind one router."""

    a: ModelProcess
    b: ModelProcess
    large: ModelProcess
    router: RouterProcess


@pytest.fixture(scope="module")
def replicas(launcher: Launcher) -> Iterator[Replicas]:
    a, b = (
        launcher.model(
            name, tokens=TOKENS, token_delay=TOKEN_DELAY, first_token_delay=FIRST_TOKEN_DELAY
        )
        for name in ("small-a", "small-b")
    )
    large = launcher.model("large", "large")
    router = launcher.router("router", {"small": [a.address, b.address], "large": [large.address]})
    launcher.ready()
    yield Replicas(a, b, large, router)


async def busy_replica(replicas: Replicas) -> ModelProcess:
    """The replica holding the one stream in flight (waits until one does)."""
    found: list[ModelProcess] = []

    def check() -> bool:
        found[:] = [r for r in (replicas.a, replicas.b) if r.gauge("active_streams") == 1]
        return len(found) == 1

    await eventually(check, timeout=5, what="a replica serving the stream")
    return found[0]


async def both_healthy(replicas: Replicas) -> None:
    """Both replicas up and their circuits closed (a previous test may have killed one)."""
    for replica in (replicas.a, replicas.b):
        if replica.process.process.poll() is not None:
            await asyncio.to_thread(replica.restart)
    async with router_stub(replicas.router.address) as stub:
        for _ in range(100):
            if (await list_tiers(stub))["small"].healthy_endpoints == 2:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("small replicas not healthy again within 10 s")


async def test_replica_killed_before_its_first_token_is_retried_on_the_other(
    replicas: Replicas, outcomes: Outcomes
) -> None:
    await both_healthy(replicas)
    async with router_stub(replicas.router.address) as stub:
        pending = asyncio.create_task(call(stub, request(mode=BUFFERED), DEADLINE))
        victim = await busy_replica(replicas)  # still in its prefill
        victim.kill()
        result = await pending
        assert result.code == grpc.StatusCode.OK, result.details
        finished = result.finished
        assert (finished.served_tier, finished.escalated, finished.degraded) == (
            "small",
            False,
            False,
        )
        assert result.escalations == [] and result.deltas == TOKENS
        assert result.seconds < DEADLINE / 2
        assert victim.events() == ["start"]  # died with the request; no answer, no abort
        assert await serving(replicas.router.address)
        # The dead replica's circuit opens: the tier reports one healthy endpoint of two.
        tiers = await list_tiers(stub)
        await eventually(lambda: replicas.router.metric('healthy_endpoints{tier="small"}') == 1)
        assert tiers["small"].endpoints == 2
    assert (replicas.router.metric('tier_errors_total{code="UNAVAILABLE",tier="small"}') or 0) >= 1
    outcomes.record(
        "small replica SIGKILLed in its prefill (2 replicas, BUFFERED)",
        f"OK in {result.seconds:.2f} s: retried on the other replica, served by small, "
        "not escalated; router SERVING; small healthy_endpoints 2 -> 1",
    )


async def test_replica_killed_after_tokens_reached_the_caller_ends_cleanly(
    replicas: Replicas, outcomes: Outcomes
) -> None:
    await both_healthy(replicas)
    watch = StreamWatch()
    async with router_stub(replicas.router.address) as stub:
        pending = asyncio.create_task(call(stub, request(mode=STREAMING), DEADLINE, watch))
        await wait_for(watch, 1)
        victim = await busy_replica(replicas)
        victim.kill()
        result = await pending
        assert result.code == grpc.StatusCode.UNAVAILABLE
        assert "tier small failed after" in result.details
        assert "not retried" in result.details
        assert 0 < result.deltas < TOKENS
        assert result.kinds[-1] == "delta"  # no Finished: the answer is incomplete
        assert result.seconds < DEADLINE / 2
        assert await serving(replicas.router.address)
        # The next caller is served by the surviving replica.
        again = await call(stub, request(mode=STREAMING), DEADLINE)
        assert again.code == grpc.StatusCode.OK, again.details
        assert again.finished.served_tier == "small"
    outcomes.record(
        "small replica SIGKILLed after tokens reached the caller (STREAMING)",
        f'UNAVAILABLE after {result.deltas} tokens, {result.seconds:.2f} s: "{result.details}"; '
        "router SERVING, next call OK on the other replica",
    )


async def test_replica_killed_mid_stream_in_buffered_mode_escalates(
    replicas: Replicas, outcomes: Outcomes
) -> None:
    """Tokens were streamed by the replica but held by the router: not retried on the other
    replica (the tier had answered), escalated to the large tier with the reason."""
    await both_healthy(replicas)
    async with router_stub(replicas.router.address) as stub:
        pending = asyncio.create_task(call(stub, request(mode=BUFFERED), DEADLINE))
        victim = await busy_replica(replicas)
        await asyncio.sleep(FIRST_TOKEN_DELAY + 3 * TOKEN_DELAY)  # a few tokens streamed
        victim.kill()
        result = await pending
        assert result.code == grpc.StatusCode.OK, result.details
        assert result.kinds[:2] == ["routed", "escalated"]  # nothing of small reached us
        escalated = result.escalations[0]
        assert (escalated.from_tier, escalated.to_tier) == ("small", "large")
        assert escalated.cause == router_service_pb2.ESCALATION_CAUSE_TIER_ERROR
        assert "small" in escalated.reason and "UNAVAILABLE" in escalated.reason
        finished = result.finished
        assert (finished.served_tier, finished.escalated) == ("large", True)
        wasted = finished.tier_usage[0]
        assert (wasted.tier, wasted.discarded) == ("small", True)
        assert wasted.usage.completion_tokens > 0  # the dead replica's tokens are paid for
        assert result.seconds < DEADLINE / 2
        assert await serving(replicas.router.address)
    outcomes.record(
        "small replica SIGKILLed mid-stream, tokens held (BUFFERED)",
        f'OK in {result.seconds:.2f} s: Escalated(TIER_ERROR, "{escalated.reason}"), '
        f"served by large; {wasted.usage.completion_tokens} wasted small tokens billed",
    )


async def test_replica_crashing_on_arrival_is_invisible_to_callers(
    launcher: Launcher, replicas: Replicas, outcomes: Outcomes
) -> None:
    """A replica that dies as the first request reaches it (``--die-after 0``): that request
    is retried on the healthy replica, and later ones skip the dead one."""
    crashing = launcher.model("small-crashing", die_after=0)
    healthy = launcher.model("small-healthy")
    router = launcher.router(
        "router-crash",
        {"small": [crashing.address, healthy.address], "large": [replicas.large.address]},
    )
    launcher.ready()
    async with router_stub(router.address) as stub:
        results = [await call(stub, request(), DEADLINE) for _ in range(4)]
    assert [r.code for r in results] == [grpc.StatusCode.OK] * 4
    assert [r.finished.served_tier for r in results] == ["small"] * 4
    assert all(not r.escalations for r in results)
    assert crashing.events() == ["start"]
    assert crashing.process.process.poll() is not None  # it really died
    assert healthy.events().count("finish") == 4
    assert await serving(router.address)
    outcomes.record(
        "small replica crashing as the request arrives (--die-after 0)",
        f"4/4 OK from small, none escalated (first call {results[0].seconds:.2f} s, "
        f"then {max(r.seconds for r in results[1:]):.2f} s at most)",
    )
