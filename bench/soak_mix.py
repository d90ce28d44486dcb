"""The soak's request mix and its driver: what each kind sends and which outcome it expects.

Every kind of request has a weight, a builder and the one outcome a healthy router gives it:
``OK`` (with or without an escalation) or a documented status code (INVALID_ARGUMENT,
UNAUTHENTICATED, PERMISSION_DENIED, DEADLINE_EXCEEDED, or CANCELLED when the caller hangs up).
:func:`drive` sends them at a fixed rate with bounded concurrency and tallies what came back;
anything else is counted as unexpected, with the first few details kept for the report.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

R = router_service_pb2
OK = "OK"
CALL_TIMEOUT_SECONDS = 10.0
TIGHT_DEADLINE_SECONDS = 0.15
LONG_PROMPT = " ".join(["Summarise the history of the Roman aqueducts in one sentence."] * 120)
"""About 7,700 characters: over the router's long-prompt rule, so it goes to the large tier."""
TOO_LONG_PROMPT = "x" * (64 * 1024 + 1)
"""One byte over the router's default prompt limit."""
_INVALID: tuple[R.RouterServiceGenerateRequest, ...] = (
    R.RouterServiceGenerateRequest(),  # no prompt
    R.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(text="   ")),
    R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="hi"), sampling=common_pb2.SamplingParams(max_tokens=100_000)
    ),
    R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="hi"), options=R.RouteOptions(fallback_threshold=2.0)
    ),
    R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="hi"),
        options=R.RouteOptions(fallback_mode=99),  # type: ignore[arg-type]
    ),
    R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(
            chat=common_pb2.Chat(
                messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content="hello")]
            )
        )
    ),
    R.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(text=TOO_LONG_PROMPT)),
)


def _text(text: str, max_tokens: int, mode: int = 0, hint: str = "") -> Any:
    return R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=text),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens),
        options=R.RouteOptions(fallback_mode=mode, tier_hint=hint),  # type: ignore[arg-type]
    )


def _chat(text: str, max_tokens: int, mode: int) -> Any:
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)
    return R.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(chat=common_pb2.Chat(messages=[message])),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens),
        options=R.RouteOptions(fallback_mode=mode),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix."""

    name: str
    weight: int
    expect: str
    """The status code name a healthy router answers with (``OK`` for a finished stream)."""
    build: Callable[[int], Any]
    """The request for the i-th call of this kind."""
    escalates: bool = False
    """For ``OK`` kinds: whether the answer must (True) or must not (False) escalate."""
    key: str = "main"
    """Which API key to present: ``main``, ``limited`` (no permissions) or ``bad``."""
    timeout: float = CALL_TIMEOUT_SECONDS
    cancel_after_first_token: bool = False


STREAMING = R.FALLBACK_MODE_STREAMING
KINDS: tuple[Kind, ...] = (
    Kind("short", 25, OK, lambda i: _text(f"Tell me about Roman aqueducts, part {i}.", 16)),
    Kind("short_streaming", 12, OK, lambda i: _chat(f"Describe a river, number {i}.", 16, 2)),
    Kind("long_prompt", 8, OK, lambda i: _text(LONG_PROMPT, 32)),
    Kind("long_answer", 7, OK, lambda i: _text(f"Write a long story {i}.", 64, 3)),
    Kind(
        "escalate_buffered", 8, OK, lambda i: _text(f"A hard one, number {i}.", 16), escalates=True
    ),
    Kind(
        "escalate_streaming",
        5,
        OK,
        lambda i: _chat(f"Another hard one, number {i}.", 16, STREAMING),
        escalates=True,
    ),
    Kind("pinned_large", 4, OK, lambda i: _text(f"Pinned question {i}.", 16, hint="large")),
    Kind("invalid", 10, "INVALID_ARGUMENT", lambda i: _INVALID[i % len(_INVALID)]),
    Kind(
        "cancelled",
        6,
        "CANCELLED",
        lambda i: _chat(f"Tell me a long tale {i}.", 64, STREAMING),
        cancel_after_first_token=True,
    ),
    Kind(
        "tight_deadline",
        5,
        "DEADLINE_EXCEEDED",
        lambda i: _text(f"A slow answer please, number {i}.", 16),
        timeout=TIGHT_DEADLINE_SECONDS,
    ),
    Kind("bad_key", 4, "UNAUTHENTICATED", lambda i: _text("Hello there.", 8), key="bad"),
    Kind(
        "forbidden",
        3,
        "PERMISSION_DENIED",
        lambda i: _chat("May I stream?", 8, STREAMING),
        key="limited",
    ),
)


@dataclass
class Tally:
    """What came back, per kind and overall."""

    codes: dict[str, Counter[str]] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    """Per kind: time to the end of each call, whatever its outcome."""
    ok_latency_ms: list[float] = field(default_factory=list)
    """Time to the end of every finished (OK) stream."""
    ttft_ms: list[float] = field(default_factory=list)
    """Time to the first token of every finished stream."""
    unexpected: list[dict[str, str]] = field(default_factory=list)
    unexpected_count: int = 0
    sent: int = 0
    late: int = 0
    """Calls sent more than one interval behind schedule (the concurrency bound was full)."""

    def add(self, kind: Kind, code: str, detail: str, latency: float, ttft: float | None) -> None:
        """Record one call's outcome."""
        self.codes.setdefault(kind.name, Counter())[code] += 1
        self.latency_ms.setdefault(kind.name, []).append(latency * 1000)
        if code == OK:
            self.ok_latency_ms.append(latency * 1000)
            if ttft is not None:
                self.ttft_ms.append(ttft * 1000)
        if code != kind.expect:
            self.unexpected_count += 1
            if len(self.unexpected) < 20:
                self.unexpected.append({"kind": kind.name, "code": code, "detail": detail[:300]})


async def call(stub: Any, kind: Kind, index: int, keys: dict[str, str], tally: Tally) -> None:
    """Send one request of ``kind`` and record its outcome."""
    metadata = (("authorization", f"Bearer {keys[kind.key]}"),)
    started = time.perf_counter()
    ttft: float | None = None
    escalated = finished = False
    code, detail = OK, ""
    stream = stub.Generate(kind.build(index), timeout=kind.timeout, metadata=metadata)
    try:
        async for event in stream:
            which = event.WhichOneof("event")
            if which == "delta" and ttft is None:
                ttft = time.perf_counter() - started
                if kind.cancel_after_first_token:
                    stream.cancel()
                    break
            elif which == "escalated":
                escalated = True
            elif which == "finished":
                finished = True
                escalated = escalated or event.finished.escalated
    except grpc.aio.AioRpcError as exc:
        code, detail = exc.code().name, exc.details() or ""
    except asyncio.CancelledError:
        code = "CANCELLED"
    if code == OK and kind.cancel_after_first_token:
        code = "CANCELLED" if ttft is not None else "NO_TOKEN_BEFORE_END"
    elif code == OK and not finished:
        code, detail = "NO_FINISHED_EVENT", "the stream ended without RouterFinished"
    elif code == OK and escalated != kind.escalates:
        code, detail = "WRONG_ESCALATION", f"escalated={escalated}, expected {kind.escalates}"
    tally.add(kind, code, detail, time.perf_counter() - started, ttft)


async def drive(
    target: str,
    keys: dict[str, str],
    *,
    rate: float,
    concurrency: int,
    seconds: float,
    max_requests: int,
    seed: int,
    tally: Tally,
    without: frozenset[str] = frozenset(),
) -> None:
    """Send the mix at ``rate`` calls/s (at most ``concurrency`` open) until time or count end;
    kinds named in ``without`` are left out."""
    chooser = random.Random(seed)
    kinds = [kind for kind in KINDS if kind.name not in without]
    weights = [kind.weight for kind in kinds]
    per_kind: Counter[str] = Counter()
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    async with grpc.aio.insecure_channel(target) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        start = time.perf_counter()
        end = start + seconds
        due = start
        while tally.sent < max_requests and time.perf_counter() < end:
            await slots.acquire()
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > interval:
                tally.late += 1
            kind = chooser.choices(kinds, weights)[0]
            task = asyncio.create_task(call(stub, kind, per_kind[kind.name], keys, tally))
            per_kind[kind.name] += 1
            tally.sent += 1
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: slots.release())
            due += interval
        if running:
            await asyncio.wait(running)
