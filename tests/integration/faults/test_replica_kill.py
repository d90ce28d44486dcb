"""A model-service replica SIGKILLed mid-stream, with two replicas of the small tier.

Before the replica's first token the router retries on the other replica (the caller never
knows); after tokens reached a caller in DISABLED mode (no retraction) it ends the stream with a
clean UNAVAILABLE naming the tier (a retry would duplicate text; the retracting modes fail over
instead: ``test_midstream_failover.py``). In BUFFERED mode nothing of the dead replica's answer was
forwarded, so the large tier answers instead. The router itself stays SERVING throughout.
"""

from __future__ import annotations

import asyncio
import functools
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
    DISABLED,
    STREAMING,
    CallResult,
    StreamWatch,
    call,
    eventually,
    list_tiers,
    request,
    wait_for,
)
from tierroute.launch import free_port
from tierroute.v1 import router_service_pb2, router_service_pb2_grpc

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
        pending = asyncio.create_task(call(stub, request(mode=DISABLED), DEADLINE, watch))
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
        "small replica SIGKILLed after tokens reached the caller (DISABLED, 2 replicas)",
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


@pytest.mark.slow  # two restarts and the router noticing each: 10-25 s
async def test_rolling_restart_of_replicas_is_invisible_to_callers(
    launcher: Launcher, replicas: Replicas, outcomes: Outcomes
) -> None:
    """Each replica in turn gets SIGTERM (drain, as in a rolling update) and is started again
    on its port, while two callers keep sending requests: none of them sees an error."""
    first = launcher.model("small-rolling-1", token_delay=0.02)
    second = launcher.model("small-rolling-2", token_delay=0.02)
    router = launcher.router(
        "router-rolling",
        {"small": [first.address, second.address], "large": [replicas.large.address]},
    )
    launcher.ready()
    done = asyncio.Event()
    results: list[CallResult] = []

    async def caller(stub: router_service_pb2_grpc.RouterServiceStub) -> None:
        while not done.is_set():
            results.append(await call(stub, request(), DEADLINE))

    def closed(replica: ModelProcess) -> bool:
        circuit = f'circuit_state{{endpoint="{replica.address}",tier="small"}}'
        return router.metric(circuit) == 0

    rejoined: list[float] = []
    async with router_stub(router.address) as stub:
        callers = [asyncio.create_task(caller(stub)) for _ in range(2)]
        try:
            for replica in (first, second):
                await asyncio.sleep(0.5)
                await asyncio.to_thread(replica.process.stop)  # SIGTERM, drain, exit
                await asyncio.sleep(0.5)  # the tier runs on one replica meanwhile
                await asyncio.to_thread(replica.restart)
                # As a rollout's minReadySeconds would: the next replica goes down only once
                # the router sends traffic to this one again (its channel may be in
                # reconnect backoff for a while after the restart).
                rejoined.append(await eventually(functools.partial(closed, replica), timeout=10))
            await asyncio.sleep(0.5)
        finally:
            done.set()
            await asyncio.gather(*callers)
    codes = [r.code for r in results]
    assert codes == [grpc.StatusCode.OK] * len(results), [r.details for r in results if r.details]
    served = [r.finished.served_tier for r in results]
    assert served == ["small"] * len(results), [
        (e.reason, r.seconds) for r in results for e in r.escalations
    ]
    assert max(r.seconds for r in results) < DEADLINE / 2
    assert len(results) > 20
    assert first.events().count("finish") > 0 and second.events().count("finish") > 0
    outcomes.record(
        "rolling restart: each small replica SIGTERMed and restarted under 2 callers",
        f"{len(results)}/{len(results)} OK from small, no escalation, slowest "
        f"{max(r.seconds for r in results):.2f} s; a restarted replica took the router "
        f"{max(rejoined):.2f} s at most to use again",
    )


async def test_dead_replica_under_concurrent_load_costs_no_caller_an_answer(
    launcher: Launcher, replicas: Replicas, outcomes: Outcomes
) -> None:
    """Many callers at once while one of two replicas is dead and its circuit never opens (a
    high threshold, no health checks): each retry must go to the live replica, not back to the
    dead one that concurrent requests' round-robin may point at again."""
    live = launcher.model("small-live", max_streams=64)
    router = launcher.router(
        "router-concurrent",
        {"small": [f"127.0.0.1:{free_port()}", live.address], "large": [replicas.large.address]},
        resilience={"circuit_failure_threshold": 1000, "health_check_interval_seconds": 0},
    )
    launcher.ready()
    async with router_stub(router.address) as stub:
        results = await asyncio.gather(*(call(stub, request(), DEADLINE) for _ in range(40)))
    assert [r.code for r in results] == [grpc.StatusCode.OK] * len(results)
    escalated = [r for r in results if r.escalations]
    assert escalated == [], escalated[0].escalations[0].reason
    assert all(r.finished.served_tier == "small" for r in results)
    failed_attempts = router.metric('tier_errors_total{code="UNAVAILABLE",tier="small"}')
    assert failed_attempts is not None and failed_attempts >= 1  # the dead one was tried
    outcomes.record(
        "40 concurrent callers, one of two small replicas dead (circuit kept closed)",
        f"40/40 OK from small, none escalated ({failed_attempts:.0f} attempts hit the dead "
        f"replica and were retried on the live one); slowest "
        f"{max(r.seconds for r in results):.2f} s",
    )
