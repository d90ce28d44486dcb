"""Overload at twice the router's configured capacity.

With ``limits.max_concurrent_streams = N`` and 2N callers at once on a slow tier, the excess is
refused at once with RESOURCE_EXHAUSTED and a RetryInfo (well before the slow streams end), and
every admitted request completes.
"""

from __future__ import annotations

import asyncio

import grpc

from tests.integration.faults.conftest import Launcher, Outcomes, router_stub, serving
from tests.integration.faults.helpers import DISABLED, call, eventually, request

CAPACITY = 4
TOKENS = 20
TOKEN_DELAY = 0.1  # each admitted stream lasts about 2 s
RETRY_AFTER = 1.5
DEADLINE = 15.0
FAST_REJECT = 0.5
"""A refusal must come back well under the slow stream's time."""


async def test_excess_is_refused_fast_and_admitted_requests_complete(
    launcher: Launcher, outcomes: Outcomes
) -> None:
    small = launcher.model(
        "busy-small", tokens=TOKENS, token_delay=TOKEN_DELAY, max_streams=4 * CAPACITY
    )
    large = launcher.model("busy-large", "large")
    router = launcher.router(
        "router-busy",
        {"small": [small.address], "large": [large.address]},
        limits={"max_concurrent_streams": CAPACITY, "retry_after_seconds": RETRY_AFTER},
    )
    launcher.ready()
    async with router_stub(router.address) as stub:
        results = await asyncio.gather(
            *(call(stub, request(mode=DISABLED), DEADLINE) for _ in range(2 * CAPACITY))
        )
        assert await serving(router.address)
    admitted = [r for r in results if r.code == grpc.StatusCode.OK]
    refused = [r for r in results if r.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert (len(admitted), len(refused)) == (CAPACITY, CAPACITY), [r.code for r in results]
    for result in refused:
        assert result.retry_delay == RETRY_AFTER
        assert f"limit {CAPACITY}" in result.details
        assert result.events == []
        assert result.seconds < FAST_REJECT
    slowest_refusal = max(r.seconds for r in refused)
    for result in admitted:
        assert result.finished.served_tier == "small"
        assert result.deltas == TOKENS
        assert result.seconds > TOKENS * TOKEN_DELAY * 0.8 > 2 * slowest_refusal
        assert result.seconds < DEADLINE / 2
    await eventually(lambda: router.metric("active_streams") == 0, what="router streams drained")
    # Capacity is back: a new caller is admitted.
    async with router_stub(router.address) as stub:
        again = await call(stub, request(mode=DISABLED, max_tokens=2), DEADLINE)
    assert again.code == grpc.StatusCode.OK, again.details
    outcomes.record(
        f"overload: {2 * CAPACITY} concurrent callers, max_concurrent_streams {CAPACITY}",
        f"{CAPACITY} RESOURCE_EXHAUSTED with RetryInfo {RETRY_AFTER} s in "
        f"{slowest_refusal * 1000:.0f} ms at most; {CAPACITY} admitted all OK in "
        f"{min(r.seconds for r in admitted):.2f} to {max(r.seconds for r in admitted):.2f} s",
    )
