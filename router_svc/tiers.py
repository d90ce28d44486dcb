"""Tier clients: ``grpc.aio`` channels to each tier's model services, with resilience.

Each configured endpoint gets one channel; a ``dns:///`` target (a Kubernetes headless
service) resolves to every replica and the channel balances them round-robin, and a tier with
several endpoints is balanced round-robin across them too. Every call carries the caller's
remaining deadline (capped by the tier's own timeout) and the request id. Before a tier's first
message, transient failures are retried with jittered exponential backoff on the next endpoint;
after it, never. A per-endpoint :class:`~router_svc.circuit.CircuitBreaker` skips endpoints that
keep failing or whose ``grpc.health.v1`` check says they are not serving.

A model service sends its prompt's token count in the initial metadata before the first token
(``tierroute-prompt-tokens``); it is passed to the caller's ``on_prompt_tokens`` so that a call
cancelled, expired or failed before its ``Finished`` still pays for the prompt.

Channels use the tier's TLS settings (mutual TLS when a client certificate is configured)
and every call carries the tier's shared secret when one is set. A tier's INVALID_ARGUMENT is
the caller's to fix (a prompt over the tier's token limit): it is passed through as is, never
retried or escalated.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc
import structlog
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_svc.cascade import Chunk, TierFailure, TierResult
from router_svc.circuit import CircuitBreaker, CircuitState
from router_svc.config import ResilienceSettings, TierSettings
from router_svc.metrics import RouterMetrics
from tierroute.errors import DeadlineExceededError, InvalidArgumentError
from tierroute.peer_auth import SecretFile
from tierroute.status import REQUEST_ID_KEY
from tierroute.tasks import cancel_and_wait
from tierroute.transport import bearer_metadata, open_channel
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

MODEL_SERVICE = "tierroute.v1.ModelService"
# Transient: another attempt (on another replica) may succeed.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# Codes that say the endpoint itself is broken (not the request, not load shedding).
_ENDPOINT_FAILURES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
OPEN_RECHECK_SECONDS = 1.0
# The caller's own deadline is "passed" within this margin: no useful work fits in it.
_DEADLINE_SLACK_SECONDS = 0.005
# The model service's initial metadata key with the prompt's token count (model_svc.servicer).
PROMPT_TOKENS_KEY = "tierroute-prompt-tokens"
_log = structlog.get_logger("router_svc.tiers")

TierItem = Chunk[common_pb2.TokenDelta] | TierResult[model_service_pb2.Finished]
"""What a tier stream yields: the tier's deltas, then its ``Finished`` (both passed on as is)."""


def _channel_options(health_checks: bool) -> list[tuple[str, object]]:
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if health_checks:
        # Client-side health checking: round_robin skips replicas reporting NOT_SERVING.
        config["healthCheckConfig"] = {"serviceName": MODEL_SERVICE}
    return [
        ("grpc.service_config", json.dumps(config)),
        # We retry ourselves, only before the first token: the channel must not.
        ("grpc.enable_retries", 0),
        # Reconnect fast to a restarted replica instead of backing off for up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]


@dataclass(slots=True)
class Endpoint:
    """One gRPC target of a tier (one replica, or a headless service of several)."""

    target: str
    channel: grpc.aio.Channel
    stub: model_service_pb2_grpc.ModelServiceStub
    health: health_pb2_grpc.HealthStub
    breaker: CircuitBreaker


def _violation(exc: grpc.aio.AioRpcError) -> tuple[str, str] | None:
    """The first BadRequest field violation (field, description) in an error's details."""
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    first = bad.field_violations[0]
                    return str(first.field), str(first.description)
    return None


def _invalid_argument(tier: str, exc: grpc.aio.AioRpcError) -> InvalidArgumentError:
    """The caller's error for a tier's INVALID_ARGUMENT, keeping the field and the reason."""
    violation = _violation(exc)
    if violation is None:
        return InvalidArgumentError("request", f"refused by tier {tier}: {exc.details() or ''}")
    field, description = violation
    return InvalidArgumentError(field, f"{description} (tier {tier})")


def _prompt_tokens(metadata: Iterable[tuple[str, str | bytes]] | None) -> int | None:
    """The prompt's token count in a model service's initial metadata (None: not reported)."""
    for key, value in metadata or ():
        if key == PROMPT_TOKENS_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            return int(text) if text.isdigit() else None
    return None


def _state_reader(breaker: CircuitBreaker) -> Callable[[], float]:
    return lambda: float(breaker.state)


class TierClient:
    """Calls one tier's model services; see the module docstring for the resilience rules."""

    def __init__(
        self,
        settings: TierSettings,
        resilience: ResilienceSettings,
        metrics: RouterMetrics,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._resilience = resilience
        self._metrics = metrics
        self._next = 0
        options = _channel_options(resilience.health_check_interval_seconds > 0)
        secret = settings.auth.secret() if settings.auth is not None else None
        self._static_metadata = bearer_metadata(secret)
        # A secret file is re-read when it changes (a rotated Secret lands in place): the
        # model services accept the previous secret for a grace period, and every call from
        # then on carries the new one, with no router restart.
        path = settings.auth.shared_secret_file if settings.auth is not None else None
        self._secret_file = SecretFile(path) if path is not None else None
        tls = settings.tls if settings.tls is not None and settings.tls.enabled else None
        if secret is not None and tls is None:
            # Allowed (a service mesh may encrypt the hop) but worth a line in the log.
            _log.warning("shared secret sent without TLS", tier=self.name)
        self.endpoints: list[Endpoint] = []
        for target in settings.endpoints:
            channel = open_channel(target, tls, options)
            endpoint = Endpoint(
                target=target,
                channel=channel,
                stub=model_service_pb2_grpc.ModelServiceStub(channel),  # type: ignore[no-untyped-call]
                health=health_pb2_grpc.HealthStub(channel),
                breaker=CircuitBreaker(
                    resilience.circuit_failure_threshold, resilience.circuit_reset_seconds
                ),
            )
            self.endpoints.append(endpoint)
            metrics.watch_endpoint(self.name, target, _state_reader(endpoint.breaker))
        metrics.watch_tier(self.name, len(self.endpoints), lambda: float(self.healthy_endpoints))

    @property
    def healthy_endpoints(self) -> int:
        """Endpoints whose circuit is not open."""
        return sum(1 for e in self.endpoints if e.breaker.state is not CircuitState.OPEN)

    def _pick(self, avoid: Endpoint | None = None) -> Endpoint | None:
        """The next endpoint (round-robin) whose circuit lets a call through; ``avoid`` (where
        a retry's previous attempt failed) only when no other endpoint can take the call."""
        count = len(self.endpoints)
        order = [(self._next + offset) % count for offset in range(count)]
        # Concurrent requests share the round-robin position: without this, a retry could land
        # on the very endpoint that just failed it while another replica was healthy.
        order.sort(key=lambda index: self.endpoints[index] is avoid)
        for index in order:
            endpoint = self.endpoints[index]
            if endpoint.breaker.allow():
                self._next = (index + 1) % count
                return endpoint
        return None

    async def generate(
        self,
        request: model_service_pb2.GenerateRequest,
        request_id: str,
        deadline: float | None,
        on_prompt_tokens: Callable[[int], None] | None = None,
    ) -> AsyncGenerator[TierItem, None]:
        """Stream ``request`` from this tier as cascade items.

        ``deadline`` is the caller's, on the ``time.monotonic`` clock (``None``: no deadline).
        ``on_prompt_tokens`` is told the prompt's token count as soon as a replica reports it
        (before its first token). Raises :class:`TierFailure` when the tier cannot serve, or
        ``DeadlineExceededError`` when the caller's deadline ran out.
        """
        metadata = ((REQUEST_ID_KEY, request_id), *self._metadata)
        attempts = self._resilience.retries + 1
        previous: Endpoint | None = None
        for attempt in range(attempts):
            endpoint = self._pick(avoid=previous)
            if endpoint is None:
                raise TierFailure(self.name, "UNAVAILABLE", "every endpoint's circuit is open")
            timeout = self._timeout(deadline)
            call = endpoint.stub.Generate(request, timeout=timeout, metadata=metadata)
            received = False
            settled = False
            try:
                if on_prompt_tokens is not None:
                    counted = _prompt_tokens(await call.initial_metadata())
                    if counted is not None:
                        on_prompt_tokens(counted)
                async for message in call:
                    if not received:
                        received = settled = True
                        endpoint.breaker.record_success()
                    kind = message.WhichOneof("event")
                    if kind == "delta":
                        delta = message.delta
                        yield Chunk(delta, len(delta.token_ids), delta.running_confidence)
                    elif kind == "finished":
                        done = message.finished
                        yield TierResult(
                            finish_reason=int(done.finish_reason),
                            prompt_tokens=done.usage.prompt_tokens,
                            completion_tokens=done.usage.completion_tokens,
                            confidence=done.confidence.score,
                            detail=done,
                        )
                return
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self._metrics.record_tier_error(self.name, code.name)
                caller_out_of_time = deadline is not None and (
                    deadline - time.monotonic() <= _DEADLINE_SLACK_SECONDS
                )
                if code in _ENDPOINT_FAILURES and not caller_out_of_time:
                    endpoint.breaker.record_failure()
                    settled = True
                if caller_out_of_time and code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise DeadlineExceededError(
                        f"deadline exceeded while tier {self.name} was answering"
                    ) from exc
                if code is grpc.StatusCode.INVALID_ARGUMENT and not received:
                    raise _invalid_argument(self.name, exc) from exc
                violation = _violation(exc)
                failure = TierFailure(
                    self.name,
                    code.name,
                    exc.details() or "",
                    violation[0] if violation is not None else None,
                )
                _log.warning(
                    "tier call failed",
                    tier=self.name,
                    endpoint=endpoint.target,
                    code=code.name,
                    attempt=attempt + 1,
                    after_first_message=received,
                )
                if received or code not in _RETRYABLE or attempt + 1 == attempts:
                    raise failure from exc
            finally:
                call.cancel()
                if not settled:
                    endpoint.breaker.release_probe()
            previous = endpoint
            await self._backoff(attempt, deadline)
        raise AssertionError("unreachable: the last attempt raises")

    def _timeout(self, deadline: float | None) -> float:
        timeout = self.settings.timeout_seconds
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= _DEADLINE_SLACK_SECONDS:
                raise DeadlineExceededError(f"deadline exceeded before calling tier {self.name}")
            timeout = min(timeout, remaining)
        return timeout

    async def _backoff(self, attempt: int, deadline: float | None) -> None:
        """Full-jitter exponential backoff, never sleeping past the caller's deadline."""
        cap = min(
            self._resilience.backoff_max_seconds,
            self._resilience.backoff_initial_seconds * (2**attempt),
        )
        delay = random.uniform(0, cap)
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic() - _DEADLINE_SLACK_SECONDS))
        await asyncio.sleep(delay)

    async def check_health(self) -> None:
        """One ``grpc.health.v1`` check of every endpoint, fed to its circuit breaker."""
        await asyncio.gather(*(self._check(e) for e in self.endpoints))

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call to the tier carries: the current shared secret, if any."""
        if self._secret_file is not None:
            return bearer_metadata(self._secret_file.secret())
        return self._static_metadata

    async def _check(self, endpoint: Endpoint) -> None:
        request = health_pb2.HealthCheckRequest(service=MODEL_SERVICE)
        try:
            reply = await endpoint.health.Check(
                request,
                timeout=self._resilience.health_check_timeout_seconds,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
                return  # no health service to ask: the call outcomes alone drive the breaker
            # UNAVAILABLE: nothing listens, or the channel's own health watch saw NOT_SERVING
            # (the check cannot get through then): as good as NOT_SERVING. Anything else (a
            # check timing out on a busy machine) is one failure towards the threshold.
            serving: bool | None = False if code is grpc.StatusCode.UNAVAILABLE else None
        else:
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        before = endpoint.breaker.state
        if serving is None:
            endpoint.breaker.record_failure()
        else:
            endpoint.breaker.record_health(serving)
        if endpoint.breaker.state is not before:
            _log.info(
                "endpoint health changed",
                tier=self.name,
                endpoint=endpoint.target,
                serving=serving,
                circuit=endpoint.breaker.state.name,
            )

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(*(e.channel.close() for e in self.endpoints))


class TierPool:
    """The configured tiers' clients, cheapest first, and their health-check loop."""

    def __init__(
        self,
        tiers: Sequence[TierSettings],
        resilience: ResilienceSettings,
        metrics: RouterMetrics,
    ) -> None:
        self.clients = {t.name: TierClient(t, resilience, metrics) for t in tiers}
        self._interval = resilience.health_check_interval_seconds
        self._task: asyncio.Task[None] | None = None

    def __getitem__(self, name: str) -> TierClient:
        return self.clients[name]

    def start(self) -> None:
        """Start the periodic health checks (if configured)."""
        if self._interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._health_loop())

    async def check_health(self) -> None:
        """Check every endpoint of every tier once."""
        await asyncio.gather(*(c.check_health() for c in self.clients.values()))

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.check_health()
            except Exception:  # a failed round must not end the loop
                _log.exception("health check round failed")
            # An open circuit is re-checked within a second, so an endpoint that comes back
            # (a tier still starting when the router did, a restarted pod) serves again soon.
            opened = any(c.healthy_endpoints < len(c.endpoints) for c in self.clients.values())
            await asyncio.sleep(
                min(self._interval, OPEN_RECHECK_SECONDS) if opened else self._interval
            )

    async def close(self) -> None:
        """Stop the health checks and close every channel."""
        await cancel_and_wait(self._task)
        self._task = None
        await asyncio.gather(*(c.close() for c in self.clients.values()))
