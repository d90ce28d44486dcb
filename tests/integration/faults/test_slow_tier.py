"""A slow tier: the caller's deadline is honoured end to end.

The router passes the caller's remaining time to the tier and gives up with DEADLINE_EXCEEDED
when it runs out; the model service's engine request is aborted (its unfinished count returns
to 0), whether the router was forwarding the tokens or holding them (BUFFERED).
"""

from __future__ import annotations

import grpc
import pytest

from tests.integration.faults.conftest import (
    Launcher,
    Outcomes,
    Pair,
    router_stub,
    serving,
)
from tests.integration.faults.helpers import (
    BUFFERED,
    DISABLED,
    STREAMING,
    call,
    eventually,
    request,
)
from tierroute.v1 import router_service_pb2

TOKEN_DELAY = 0.1
TOKENS = 200  # 20 s of answer: far longer than any deadline here
DEADLINE = 1.0
# How late DEADLINE_EXCEEDED may arrive on a busy 2-core machine.
LATENESS = 0.75


@pytest.fixture(scope="module")
def slow(launcher: Launcher) -> Pair:
    return launcher.pair("slow", tokens=TOKENS, token_delay=TOKEN_DELAY)


@pytest.mark.parametrize(
    "mode", [DISABLED, STREAMING, BUFFERED], ids=["disabled", "streaming", "buffered"]
)
async def test_deadline_is_honoured_and_the_engine_request_aborted(
    slow: Pair, mode: int, outcomes: Outcomes
) -> None:
    aborted_before = slow.small.events().count("abort")
    async with router_stub(slow.router.address) as stub:
        result = await call(stub, request(mode=mode), DEADLINE)
    assert result.code == grpc.StatusCode.DEADLINE_EXCEEDED, (result.code, result.details)
    assert DEADLINE - 0.05 <= result.seconds < DEADLINE + LATENESS
    if mode == BUFFERED:
        assert result.kinds == ["routed"]  # the held tokens were never sent
    else:
        assert result.kinds[0] == "routed" and 0 < result.deltas < TOKENS
    # The engine request was aborted, not left generating for the remaining ~19 s.
    settle = await eventually(slow.small.idle, timeout=3, what="slow tier idle")
    assert slow.small.events().count("abort") == aborted_before + 1
    assert slow.small.events()[-1] == "abort"
    assert settle < 2
    # No escalation to the large tier was attempted with no time left.
    assert slow.large.events() == []
    assert await serving(slow.router.address)
    assert await serving(slow.small.address)
    # The caller's own short deadline says nothing about the tier: its circuit stays closed.
    circuit = f'circuit_state{{endpoint="{slow.small.address}",tier="small"}}'
    assert slow.router.metric(circuit) == 0
    name = router_service_pb2.FallbackMode.Name(mode).removeprefix("FALLBACK_MODE_")
    outcomes.record(
        f"slow small tier (0.1 s/token), caller deadline {DEADLINE:.1f} s, {name}",
        f"DEADLINE_EXCEEDED at {result.seconds:.2f} s after {result.deltas} tokens; engine "
        f"request aborted, unfinished 0 after {settle:.2f} s; no call to large",
    )
