"""Router restart under load: SIGTERM (drain) and SIGKILL while clients stream.

On SIGTERM the router stops taking calls, lets streams finish for ``server.grace_seconds`` and
ends the rest; on SIGKILL every stream ends at once. Either way every caller gets an answer or
UNAVAILABLE (retryable) promptly, the model service's requests are aborted, and a new router on
the same port serves the same clients again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import grpc
import pytest

from tests.integration.faults.conftest import (
    ROUTER_GRACE_SECONDS,
    Launcher,
    Outcomes,
    Pair,
    router_stub,
    serving,
)
from tests.integration.faults.helpers import (
    DISABLED,
    CallResult,
    StreamWatch,
    call,
    eventually,
    request,
    wait_for,
)

TOKEN_DELAY = 0.1
LONG = 40  # tokens: 4 s, outlasts the grace period
SHORT = 3  # tokens: done within the grace period
STREAMS = 3  # of each length
DEADLINE = 15.0


@pytest.fixture(scope="module")
def stack(launcher: Launcher) -> Pair:
    return launcher.pair("restart", tokens=LONG, token_delay=TOKEN_DELAY)


async def start_streams(
    stub: object, lengths: list[int]
) -> tuple[list[asyncio.Task[CallResult]], StreamWatch]:
    """Open one stream per length and return once each has received a token."""
    watch = StreamWatch()
    tasks = [
        asyncio.create_task(
            call(stub, request(mode=DISABLED, max_tokens=n), DEADLINE, watch)  # type: ignore[arg-type]
        )
        for n in lengths
    ]
    await wait_for(watch, len(lengths))
    return tasks, watch


async def restarted_and_serving(stack: Pair) -> None:
    """A new router on the same port; the test's channel reconnects and is served."""
    await asyncio.to_thread(stack.router.process.stop)
    await asyncio.to_thread(stack.router.restart)
    async with router_stub(stack.router.address) as stub:
        result = await call(stub, request(max_tokens=2), DEADLINE)
    assert result.code == grpc.StatusCode.OK, result.details
    assert result.finished.served_tier == "small"


async def test_sigterm_drains_short_streams_and_ends_long_ones(
    stack: Pair, outcomes: Outcomes
) -> None:
    aborted_before = stack.small.events().count("abort")
    async with router_stub(stack.router.address) as stub:
        tasks, _ = await start_streams(stub, [LONG] * STREAMS + [SHORT] * STREAMS)
        stack.router.process.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.1)
        # A new call on the draining router is refused at once.
        late = await call(stub, request(max_tokens=2), DEADLINE)
        results = await asyncio.gather(*tasks)
        ended = time.monotonic() - signalled
    long, short = results[:STREAMS], results[STREAMS:]
    assert late.code == grpc.StatusCode.UNAVAILABLE
    assert late.seconds < 1
    for result in short:
        assert result.code == grpc.StatusCode.OK, result.details
        assert result.deltas == SHORT and result.finished.served_tier == "small"
    for result in long:
        assert result.code == grpc.StatusCode.UNAVAILABLE, (result.code, result.details)
        assert 0 < result.deltas < LONG
    # Nothing waits past the grace period (plus the time to close connections).
    assert ended < ROUTER_GRACE_SECONDS + 1.5
    await eventually(stack.small.idle, timeout=5, what="small tier idle")
    assert stack.small.events().count("abort") == aborted_before + STREAMS
    assert await serving(stack.small.address)
    await restarted_and_serving(stack)
    outcomes.record(
        f"router SIGTERM with {2 * STREAMS} streams in flight (grace {ROUTER_GRACE_SECONDS:.0f} s)",
        f"{STREAMS} short streams completed OK; {STREAMS} long ones UNAVAILABLE "
        f'("{long[0].details}"); all ended '
        f"{ended:.2f} s after the signal; a new call UNAVAILABLE in {late.seconds * 1000:.0f} ms; "
        "tier requests aborted; new router on the same port served",
    )


async def test_sigkill_ends_every_stream_with_unavailable(stack: Pair, outcomes: Outcomes) -> None:
    aborted_before = stack.small.events().count("abort")
    async with router_stub(stack.router.address) as stub:
        tasks, _ = await start_streams(stub, [LONG] * STREAMS)
        os.killpg(stack.router.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        results = await asyncio.gather(*tasks)
        ended = time.monotonic() - killed
        # While no router runs, calls fail fast instead of waiting for their deadline.
        down = await call(stub, request(max_tokens=2), DEADLINE)
    for result in results:
        assert result.code == grpc.StatusCode.UNAVAILABLE, (result.code, result.details)
        assert 0 < result.deltas < LONG
    assert ended < 1
    assert down.code == grpc.StatusCode.UNAVAILABLE and down.seconds < 1
    # The model service notices the router's connection is gone and aborts its requests.
    await eventually(stack.small.idle, timeout=5, what="small tier idle")
    assert stack.small.events().count("abort") == aborted_before + STREAMS
    await restarted_and_serving(stack)
    outcomes.record(
        f"router SIGKILL with {STREAMS} streams in flight",
        f'all UNAVAILABLE ("{results[0].details}") within {ended * 1000:.0f} ms; calls while '
        f"down UNAVAILABLE in "
        f"{down.seconds * 1000:.0f} ms; tier requests aborted; new router served",
    )
