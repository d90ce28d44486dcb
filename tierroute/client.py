"""Typed Python client of the router: ``Router`` (asyncio) and ``SyncRouter``.

    async with Router("127.0.0.1:50051", api_key="...") as router:
        decision = await router.route("What is 2 + 2?")
        async for event in router.generate("Explain TCP slow start"):
            ...
        result = await router.complete("Write a haiku")   # text + routing facts
        await router.submit_feedback(result.routed.request_id, 1.0)   # the caller's verdict
        quality = await router.get_quality()   # served quality vs all-largest, with evidence

Over TLS: ``Router(target, tls=ClientTls(ca_file="ca.pem"))``; for mutual TLS add
``cert_file`` and ``key_file``; ``server_name`` when the certificate names another host.

Every call has a deadline (``timeout``, seconds). ``UNAVAILABLE`` is retried with jittered
backoff, but only before the first event arrived (never a retry that duplicates text). Errors are
raised as :class:`RouterError` subclasses carrying the gRPC status code and its details.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc
from google.rpc import error_details_pb2, status_pb2

from tierroute.config import ClientTls
from tierroute.transport import open_channel
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

__all__ = [
    "MAX_FEEDBACK_COMMENT_CHARS",
    "ClientTls",
    "Completion",
    "Escalation",
    "FinishedEvent",
    "Message",
    "RetryableRouterError",
    "RoutedEvent",
    "Router",
    "RouterError",
    "SyncRouter",
    "TextEvent",
]

MAX_FEEDBACK_COMMENT_CHARS = 1000
"""Longest feedback comment the contract accepts (``SubmitFeedbackRequest.comment``)."""

Message = tuple[str, str]
"""A chat message as (role, content); role is "system", "user" or "assistant"."""

_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}
_MODES = {
    None: router_service_pb2.FALLBACK_MODE_UNSPECIFIED,
    "buffered": router_service_pb2.FALLBACK_MODE_BUFFERED,
    "streaming": router_service_pb2.FALLBACK_MODE_STREAMING,
    "early_window": router_service_pb2.FALLBACK_MODE_EARLY_WINDOW,
    "disabled": router_service_pb2.FALLBACK_MODE_DISABLED,
}


class RouterError(Exception):
    """Router call failed: ``code`` is the gRPC status, ``details`` its google.rpc details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[Any] = ()) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = tuple(details)

    @property
    def retry_after_seconds(self) -> float | None:
        """The server's RetryInfo delay, if it sent one."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.RetryInfo):
                return float(detail.retry_delay.seconds + detail.retry_delay.nanos / 1e9)
        return None


class RetryableRouterError(RouterError):
    """UNAVAILABLE or RESOURCE_EXHAUSTED: the same call may succeed later."""


@dataclass(frozen=True)
class RoutedEvent:
    """The router's decision for this request."""

    tier: str
    reason: str
    classifier_score: float | None
    request_id: str


@dataclass(frozen=True)
class TextEvent:
    """Generated text of the tier currently serving."""

    text: str
    tier: str


@dataclass(frozen=True)
class Escalation:
    """The request moved to a larger tier; discard text received from ``from_tier``."""

    from_tier: str
    to_tier: str
    cause: str
    confidence: float
    reason: str


@dataclass(frozen=True)
class FinishedEvent:
    """The end of the stream with its routing facts."""

    tier: str
    escalated: bool
    degraded: bool
    degraded_reason: str
    cost_usd: float
    baseline_cost_usd: float
    savings_usd: float
    confidence: float
    prompt_tokens: int
    completion_tokens: int
    raw: router_service_pb2.RouterFinished = field(repr=False)


Event = RoutedEvent | TextEvent | Escalation | FinishedEvent


@dataclass(frozen=True)
class Completion:
    """A whole answer (only the text of the tier that served) with its routing facts."""

    text: str
    routed: RoutedEvent
    finished: FinishedEvent
    escalations: tuple[Escalation, ...]


def _error(exc: grpc.aio.AioRpcError) -> RouterError:
    code = exc.code()
    details: list[Any] = []
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for packed in status_pb2.Status.FromString(value).details:
            for kind in (
                error_details_pb2.BadRequest,
                error_details_pb2.RetryInfo,
                error_details_pb2.ErrorInfo,
            ):
                if packed.Is(kind.DESCRIPTOR):
                    detail = kind()
                    packed.Unpack(detail)
                    details.append(detail)
    retryable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
    cls = RetryableRouterError if retryable else RouterError
    return cls(code, exc.details() or "", details)


def _prompt(prompt: str | Sequence[Message]) -> common_pb2.Prompt:
    if isinstance(prompt, str):
        return common_pb2.Prompt(text=prompt)
    messages = []
    for role, content in prompt:
        if role not in _ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {sorted(_ROLES)}")
        messages.append(common_pb2.ChatMessage(role=_ROLES[role], content=content))
    return common_pb2.Prompt(chat=common_pb2.Chat(messages=messages))


def _options(
    fallback_mode: str | None, tier: str | None, fallback_threshold: float | None
) -> router_service_pb2.RouteOptions:
    if fallback_mode not in _MODES:
        raise ValueError(
            f"unknown fallback_mode {fallback_mode!r}; use one of {sorted(filter(None, _MODES))}"
        )
    options = router_service_pb2.RouteOptions(
        fallback_mode=_MODES[fallback_mode], tier_hint=tier or ""
    )
    if fallback_threshold is not None:
        options.fallback_threshold = fallback_threshold
    return options


def _event(message: router_service_pb2.RouterServiceGenerateResponse, tier: str) -> Event:
    kind = message.WhichOneof("event")
    if kind == "routed":
        d = message.routed.decision
        score = d.classifier_score if d.HasField("classifier_score") else None
        return RoutedEvent(d.tier, d.reason, score, message.routed.request_id)
    if kind == "delta":
        return TextEvent(message.delta.text, tier)
    if kind == "escalated":
        e = message.escalated
        cause = router_service_pb2.EscalationCause.Name(e.cause).removeprefix("ESCALATION_CAUSE_")
        return Escalation(e.from_tier, e.to_tier, cause.lower(), e.confidence_score, e.reason)
    if kind == "finished":
        f = message.finished
        served = next(
            (u.usage for u in f.tier_usage if u.tier == f.served_tier), common_pb2.Usage()
        )
        return FinishedEvent(
            tier=f.served_tier,
            escalated=f.escalated,
            degraded=f.degraded,
            degraded_reason=f.degraded_reason,
            cost_usd=f.cost_usd,
            baseline_cost_usd=f.baseline_cost_usd,
            savings_usd=f.savings_usd,
            confidence=f.confidence.score,
            prompt_tokens=served.prompt_tokens,
            completion_tokens=served.completion_tokens,
            raw=f,
        )
    raise RouterError(grpc.StatusCode.INTERNAL, f"unexpected event {kind!r} from the router")


class Router:
    """Async client of ``tierroute.v1.RouterService``."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        credentials: grpc.ChannelCredentials | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        if credentials is not None and tls is not None:
            raise ValueError("pass credentials or tls, not both")
        self._channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials is not None
            else open_channel(target, tls)
        )
        self._stub = router_service_pb2_grpc.RouterServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff_seconds

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _pause(self, attempt: int) -> None:
        await asyncio.sleep(self._backoff * (2**attempt) * random.uniform(0.5, 1.5))

    async def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
        """One unary call with the deadline and the UNAVAILABLE retries of every call."""
        for attempt in range(self._retries + 1):
            try:
                return await method(
                    request, timeout=timeout or self._timeout, metadata=self._metadata
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self._retries:
                    raise _error(exc) from exc
                await self._pause(attempt)
        raise AssertionError("unreachable")

    async def route(
        self,
        prompt: str | Sequence[Message],
        *,
        tier: str | None = None,
        timeout: float | None = None,
    ) -> RoutedEvent:
        """The tier the router would pick, without generating."""
        request = router_service_pb2.RouteRequest(
            prompt=_prompt(prompt), options=_options(None, tier, None)
        )
        reply = await self._unary(self._stub.Route, request, timeout)
        d = reply.decision
        score = d.classifier_score if d.HasField("classifier_score") else None
        return RoutedEvent(d.tier, d.reason, score, "")

    async def submit_feedback(
        self, request_id: str, score: float, comment: str = "", *, timeout: float | None = None
    ) -> router_service_pb2.SubmitFeedbackResponse:
        """Judge an answer the router served (``score`` in [0, 1]); returns the stored judgment.

        Send it with the API key that made the request. ``RouterError`` with ``NOT_FOUND`` when
        the router holds no record of ``request_id``; sending again replaces earlier feedback.
        """
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {score!r}")
        if len(comment) > MAX_FEEDBACK_COMMENT_CHARS:
            raise ValueError(f"comment longer than {MAX_FEEDBACK_COMMENT_CHARS} characters")
        request = router_service_pb2.SubmitFeedbackRequest(
            request_id=request_id, score=score, comment=comment
        )
        reply: router_service_pb2.SubmitFeedbackResponse = await self._unary(
            self._stub.SubmitFeedback, request, timeout
        )
        return reply

    async def get_quality(
        self, *, timeout: float | None = None
    ) -> router_service_pb2.GetQualityResponse:
        """The quality served relative to all-largest, with intervals, thresholds and costs."""
        reply: router_service_pb2.GetQualityResponse = await self._unary(
            self._stub.GetQuality, router_service_pb2.GetQualityRequest(), timeout
        )
        return reply

    async def generate(
        self,
        prompt: str | Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float | None = None,
        stop: Sequence[str] = (),
        fallback_mode: str | None = None,
        tier: str | None = None,
        fallback_threshold: float | None = None,
        request_id: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """Stream typed events: RoutedEvent, TextEvent…, Escalation?, TextEvent…, FinishedEvent."""
        sampling = common_pb2.SamplingParams(max_tokens=max_tokens, stop=list(stop))
        if temperature is not None:
            sampling.temperature = temperature
        request = router_service_pb2.RouterServiceGenerateRequest(
            prompt=_prompt(prompt),
            sampling=sampling,
            options=_options(fallback_mode, tier, fallback_threshold),
            request_id=request_id,
        )
        deadline = asyncio.get_running_loop().time() + (timeout or self._timeout)
        for attempt in range(self._retries + 1):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise RouterError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before a reply"
                )
            call = self._stub.Generate(request, timeout=remaining, metadata=self._metadata)
            received = False
            tier_now = ""
            try:
                async for message in call:
                    received = True
                    event = _event(message, tier_now)
                    if isinstance(event, RoutedEvent):
                        tier_now = event.tier
                    elif isinstance(event, Escalation):
                        tier_now = event.to_tier
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                retry = exc.code() == grpc.StatusCode.UNAVAILABLE and not received
                if not retry or attempt == self._retries:
                    raise _error(exc) from exc
            finally:
                call.cancel()
            await self._pause(attempt)

    async def complete(self, prompt: str | Sequence[Message], **kwargs: Any) -> Completion:
        """The served tier's whole answer with its routing facts (discarded text dropped)."""
        parts: list[str] = []
        routed: RoutedEvent | None = None
        finished: FinishedEvent | None = None
        escalations: list[Escalation] = []
        async for event in self.generate(prompt, **kwargs):
            if isinstance(event, RoutedEvent):
                routed = event
            elif isinstance(event, TextEvent):
                parts.append(event.text)
            elif isinstance(event, Escalation):
                escalations.append(event)
                parts.clear()
            else:
                finished = event
        if routed is None or finished is None:
            raise RouterError(grpc.StatusCode.INTERNAL, "stream ended without Routed or Finished")
        return Completion("".join(parts), routed, finished, tuple(escalations))


class SyncRouter:
    """Blocking wrapper of :class:`Router` for scripts (runs its own event loop)."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._router = self._loop.run_until_complete(self._make(target, kwargs))

    @staticmethod
    async def _make(target: str, kwargs: dict[str, Any]) -> Router:
        return Router(target, **kwargs)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and the loop."""
        self._loop.run_until_complete(self._router.close())
        self._loop.close()

    def route(self, prompt: str | Sequence[Message], **kwargs: Any) -> RoutedEvent:
        """See :meth:`Router.route`."""
        return self._loop.run_until_complete(self._router.route(prompt, **kwargs))

    def complete(self, prompt: str | Sequence[Message], **kwargs: Any) -> Completion:
        """See :meth:`Router.complete`."""
        return self._loop.run_until_complete(self._router.complete(prompt, **kwargs))

    def submit_feedback(
        self, request_id: str, score: float, comment: str = "", **kwargs: Any
    ) -> router_service_pb2.SubmitFeedbackResponse:
        """See :meth:`Router.submit_feedback`."""
        return self._loop.run_until_complete(
            self._router.submit_feedback(request_id, score, comment, **kwargs)
        )

    def get_quality(self, **kwargs: Any) -> router_service_pb2.GetQualityResponse:
        """See :meth:`Router.get_quality`."""
        return self._loop.run_until_complete(self._router.get_quality(**kwargs))

    def generate(self, prompt: str | Sequence[Message], **kwargs: Any) -> Iterator[Event]:
        """See :meth:`Router.generate`; yields events as they arrive."""
        stream = self._router.generate(prompt, **kwargs).__aiter__()
        while True:
            try:
                yield self._loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
