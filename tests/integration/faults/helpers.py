"""Client-side helpers of the fault tests: requests, one call's outcome, metrics, waiting.

Every call carries a deadline and :func:`call` measures how long it took, so each test can
assert both what the caller was told and that nothing hung past its deadline.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

Event = router_service_pb2.RouterServiceGenerateResponse
BUFFERED = router_service_pb2.FALLBACK_MODE_BUFFERED
STREAMING = router_service_pb2.FALLBACK_MODE_STREAMING
DISABLED = router_service_pb2.FALLBACK_MODE_DISABLED
# The test's own channels reconnect fast to a restarted router (gRPC's default backoff
# starts at a second and grows to two minutes).
CLIENT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


def request(
    text: str = "What is the answer?", max_tokens: int = 0, mode: int = BUFFERED
) -> router_service_pb2.RouterServiceGenerateRequest:
    """A chat request with the given cascade mode (``max_tokens`` 0: the service default)."""
    return router_service_pb2.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(
            chat=common_pb2.Chat(
                messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)]
            )
        ),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens),
        options=router_service_pb2.RouteOptions(fallback_mode=mode),  # type: ignore[arg-type]
    )


@dataclass
class CallResult:
    """How one Generate call ended, seen from the caller."""

    code: grpc.StatusCode
    details: str
    events: list[Event]
    seconds: float
    """From the call's start to its end (status or EOF)."""
    retry_delay: float | None = None
    """RetryInfo's delay (seconds) when the status carried one."""
    first_delta_seconds: float | None = None

    @property
    def kinds(self) -> list[str]:
        """The events' oneof arms, in order."""
        return [str(e.WhichOneof("event")) for e in self.events]

    @property
    def finished(self) -> router_service_pb2.RouterFinished:
        """The final event (fails when the stream did not finish)."""
        assert self.kinds and self.kinds[-1] == "finished", (self.code, self.details, self.kinds)
        return self.events[-1].finished

    @property
    def deltas(self) -> int:
        """Tokens received."""
        return sum(len(e.delta.token_ids) for e in self.events if e.WhichOneof("event") == "delta")

    @property
    def escalations(self) -> list[router_service_pb2.Escalated]:
        """Escalated events received."""
        return [e.escalated for e in self.events if e.WhichOneof("event") == "escalated"]


def retry_delay_of(exc: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay in an error's ``google.rpc.Status`` details, if any."""
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


@dataclass
class StreamWatch:
    """Shared progress of concurrent calls (tests wait on it before injecting a fault)."""

    first_deltas: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


async def call(
    stub: router_service_pb2_grpc.RouterServiceStub,
    req: router_service_pb2.RouterServiceGenerateRequest,
    timeout: float,
    watch: StreamWatch | None = None,
) -> CallResult:
    """Run one Generate to its end and describe the outcome (errors are results, not raised)."""
    started = time.monotonic()
    events: list[Event] = []
    first: float | None = None
    stream = stub.Generate(req, timeout=timeout)
    try:
        async for event in stream:
            events.append(event)
            if first is None and event.WhichOneof("event") == "delta":
                first = time.monotonic() - started
                if watch is not None:
                    watch.first_deltas += 1
                    watch.changed.set()
    except grpc.aio.AioRpcError as exc:
        return CallResult(
            exc.code(),
            exc.details() or "",
            events,
            time.monotonic() - started,
            retry_delay_of(exc),
            first,
        )
    return CallResult(grpc.StatusCode.OK, "", events, time.monotonic() - started, None, first)


async def wait_for(watch: StreamWatch, first_deltas: int, timeout: float = 10.0) -> None:
    """Until ``first_deltas`` calls have received a token."""
    async with asyncio.timeout(timeout):
        while watch.first_deltas < first_deltas:
            watch.changed.clear()
            await watch.changed.wait()


def scrape(metrics_port: int | None, metric: str) -> float | None:
    """One sample (labels included in ``metric``) from ``/metrics``; None when not exported."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(metric + " "):
                return float(line.rsplit(" ", 1)[1])
    return None


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Poll ``check`` until true; returns the seconds it took (fails after ``timeout``)."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass  # a process being restarted: its /metrics is briefly gone
        assert time.monotonic() - started < timeout, f"not reached in {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def list_tiers(
    stub: router_service_pb2_grpc.RouterServiceStub,
) -> dict[str, router_service_pb2.TierInfo]:
    """ListTiers, by tier name."""
    reply = await stub.ListTiers(router_service_pb2.ListTiersRequest(), timeout=5)
    return {tier.name: tier for tier in reply.tiers}
