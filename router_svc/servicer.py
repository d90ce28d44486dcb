"""``tierroute.v1.RouterService``: a thin adapter between the protos and the routing domain.

Generate: authenticate, check the tenant's spend budget, validate, admit, decide (policy), run
the cascade over the tier clients, convert its events to the stream, record the request in the
cost ledger and charge its cost to the tenant. Errors are raised as domain errors; the server's
interceptor maps them to gRPC statuses (an exhausted budget adds a ``QuotaFailure``); the
messages themselves are built in :mod:`router_svc.responses`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import structlog

from router_svc import requests, responses
from router_svc.auth import Tenant, TenantGate
from router_svc.cascade import Cascade, CascadePlan, Escalation, Forward, Outcome
from router_svc.config import RouterSettings
from router_svc.costs import token_cost
from router_svc.ledger import BudgetExhaustedError, CostLedger, RequestRecord
from router_svc.metrics import RouterMetrics
from router_svc.policy import RoutingDecision, RoutingPolicy
from router_svc.shadow import ShadowSampler
from router_svc.tiers import TierPool
from tierroute.errors import CancelledError as CallerGoneError
from tierroute.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    OverloadedError,
    TierrouteError,
)
from tierroute.status import REQUEST_ID_KEY
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

TENANT_KEY = "x-tenant"
AUTHORIZATION_KEY = "authorization"
Context = grpc.aio.ServicerContext[Any, Any]
Response = router_service_pb2.RouterServiceGenerateResponse


def _metadata(context: Context, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value[:128]
    return ""


class RouterServicer(router_service_pb2_grpc.RouterServiceServicer):
    """Serves Route, Generate and ListTiers."""

    def __init__(
        self,
        settings: RouterSettings,
        policy: RoutingPolicy,
        tiers: TierPool,
        ledger: CostLedger,
        metrics: RouterMetrics,
        shadow: ShadowSampler | None = None,
        gate: TenantGate | None = None,
    ) -> None:
        self._settings = settings
        self._gate = gate
        self._shadow = shadow
        self._names = settings.tier_names
        self._policy = policy
        self._tiers = tiers
        self._ledger = ledger
        self._metrics = metrics
        self._active = 0

    async def Route(
        self, request: router_service_pb2.RouteRequest, context: Context
    ) -> router_service_pb2.RouteResponse:
        """Decide the tier of a prompt without generating."""
        tenant = self._authenticate(context, "Route")
        if tenant is not None:
            tenant.check_options(request.options.tier_hint, streaming=False)
            self._admit(tenant)
        requests.validate_prompt(request.prompt, request.HasField("prompt"), self._settings.limits)
        requests.validate_options(request.options)
        decision = await self._decide(request.prompt, request.options)
        return router_service_pb2.RouteResponse(decision=responses.decision_pb(decision))

    async def ListTiers(
        self, request: router_service_pb2.ListTiersRequest, context: Context
    ) -> router_service_pb2.ListTiersResponse:
        """The configured tiers, cheapest first, with prices and endpoint health."""
        self._authenticate(context, "ListTiers")
        infos = []
        for tier in self._settings.tiers:
            client = self._tiers[tier.name]
            infos.append(
                router_service_pb2.TierInfo(
                    name=tier.name,
                    input_usd_per_mtok=tier.input_usd_per_mtok,
                    output_usd_per_mtok=tier.output_usd_per_mtok,
                    endpoints=len(client.endpoints),
                    healthy_endpoints=client.healthy_endpoints,
                )
            )
        return router_service_pb2.ListTiersResponse(tiers=infos)

    async def _decide(
        self, prompt: common_pb2.Prompt, options: router_service_pb2.RouteOptions
    ) -> RoutingDecision:
        decision = await self._policy.decide(requests.routing_text(prompt), options.tier_hint)
        self._metrics.record_decision(
            decision.tier, decision.reason, decision.latency_seconds, decision.classifier_score
        )
        return decision

    async def Generate(
        self, request: router_service_pb2.RouterServiceGenerateRequest, context: Context
    ) -> AsyncIterator[Response]:
        """Route, stream the answer with its routing events, and account for its cost."""
        started = time.monotonic()
        remaining = context.time_remaining()
        deadline = None if remaining is None else started + remaining
        # An id that cannot go into metadata is refused by validation; until then it is not used.
        caller_id = request.request_id if requests.usable_request_id(request.request_id) else ""
        request_id = caller_id or _metadata(context, REQUEST_ID_KEY) or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        run = _Run(request_id, _metadata(context, TENANT_KEY), started)
        if self._settings.logging.log_prompts:
            run.prompt_text = requests.routing_text(request.prompt)
        admitted = False
        tenant: Tenant | None = None
        try:
            tenant = self._authenticate(context, "Generate")
            if tenant is not None:
                run.tenant = tenant.name
                run.account = tenant
                streaming = (
                    request.options.fallback_mode == router_service_pb2.FALLBACK_MODE_STREAMING
                )
                tenant.check_options(request.options.tier_hint, streaming)
                assert self._gate is not None
                # Before the rate limit: a refused request should not use up the tenant's rate.
                self._gate.check_budget(tenant)
                self._admit(tenant)
            limits = self._settings.limits
            prompt_bytes = requests.validate_generate(request, limits)
            if self._active >= limits.max_concurrent_streams:
                raise OverloadedError(
                    f"{self._active} streams in flight (limit {limits.max_concurrent_streams})",
                    retry_after_seconds=limits.retry_after_seconds,
                )
            if tenant is not None:
                assert self._gate is not None
                self._gate.open_stream(tenant)
            admitted = True
            self._active += 1
            self._metrics.active_streams.inc()
            run.decision = await self._decide(request.prompt, request.options)
            self._check_budget(request, prompt_bytes, run.decision.tier)
            run.cascade = self._cascade(request, run.decision, request_id, deadline)
            async for response in self._stream(request, run, context):
                yield response
        except TierrouteError as exc:
            self._record_failure(run, exc.kind.value)
            if not run.metadata_sent:
                # Refused before anything was sent: the caller still learns the request id.
                await self._send_metadata(run, context)
            if isinstance(exc, BudgetExhaustedError):
                await context.abort_with_status(responses.quota_status(exc))
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # grpc cancels the handler both when the caller hangs up and when its deadline
            # passes; the error alerts count only the second, so tell them apart.
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            self._record_failure(run, "DEADLINE_EXCEEDED" if expired else "CANCELLED")
            raise
        except Exception:
            self._record_failure(run, "INTERNAL")
            raise
        finally:
            if admitted:
                self._active -= 1
                self._metrics.active_streams.dec()
                if tenant is not None:
                    assert self._gate is not None
                    self._gate.close_stream(tenant)

    def _authenticate(self, context: Context, method: str) -> Tenant | None:
        """The caller's tenant when keys are required (bound to the log context), else None."""
        if self._gate is None or method in self._settings.auth.open_methods:
            return None
        header = None
        for name, value in context.invocation_metadata() or ():
            if name == AUTHORIZATION_KEY and isinstance(value, str):
                header = value
        tenant = self._gate.authenticate(header)
        structlog.contextvars.bind_contextvars(tenant=tenant.name)
        return tenant

    def _admit(self, tenant: Tenant) -> None:
        """Take one request from the tenant's rate limit (RESOURCE_EXHAUSTED when over it)."""
        assert self._gate is not None
        self._gate.admit(tenant)

    async def _send_metadata(self, run: _Run, context: Context) -> None:
        run.metadata_sent = True
        try:
            await context.send_initial_metadata(((REQUEST_ID_KEY, run.request_id),))
        except Exception as exc:  # grpc's ExecuteBatchError: the call is already over
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceededError("deadline passed before the response began") from exc
            if context.cancelled():
                raise CallerGoneError("the caller left before the response began") from exc
            raise

    async def _stream(
        self,
        request: router_service_pb2.RouterServiceGenerateRequest,
        run: _Run,
        context: Context,
    ) -> AsyncIterator[Response]:
        """The response stream of an admitted, decided request."""
        assert run.cascade is not None and run.decision is not None
        m = self._metrics
        shadow_text: list[str] | None = (
            [] if self._shadow is not None and self._shadow.wants() else None
        )
        # Closing the cascade (caller gone, error) closes the tier stream and cancels its call.
        async with aclosing(run.cascade.run()) as events:
            # The routed tier's call starts now, while the metadata and Routed go out: its time
            # to first token overlaps with those writes instead of following them.
            pending = asyncio.ensure_future(anext(events))
            try:
                await self._send_metadata(run, context)
                yield Response(
                    routed=router_service_pb2.Routed(
                        decision=responses.decision_pb(run.decision), request_id=run.request_id
                    )
                )
                event = await pending
                while True:
                    if isinstance(event, Forward):
                        if run.ttft is None:
                            run.ttft = time.monotonic() - run.started
                            m.child(m.ttft, m.tier(event.tier)).observe(run.ttft)
                        if shadow_text is not None:
                            shadow_text.append(event.chunk.payload.text)  # type: ignore[attr-defined]
                        yield Response(delta=event.chunk.payload)  # type: ignore[arg-type]
                    elif isinstance(event, Escalation):
                        run.escalations.append((event.from_tier, event.to_tier, event.cause.value))
                        m.record_escalation(event.from_tier, event.to_tier, event.cause)
                        yield Response(escalated=responses.escalated_pb(event))
                    else:
                        yield Response(finished=self._finish(run, event))
                        if shadow_text is not None and not (event.escalated or event.degraded):
                            self._submit_shadow(
                                request, run.request_id, event.served_tier, shadow_text
                            )
                        return
                    event = await anext(events)
            finally:
                if not pending.done():
                    pending.cancel()
                    await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # already raised, or moot once the caller is gone

    def _cascade(
        self,
        request: router_service_pb2.RouterServiceGenerateRequest,
        decision: RoutingDecision,
        request_id: str,
        deadline: float | None,
    ) -> Cascade:
        policy = self._settings.policy
        options = request.options
        threshold = (
            options.fallback_threshold
            if options.HasField("fallback_threshold")
            else policy.fallback_threshold
        )
        plan = CascadePlan(
            tiers=self._names,
            start=self._names.index(decision.tier),
            mode=requests.fallback_mode(options, policy.fallback_mode),
            threshold=threshold,
            early_window_tokens=policy.early_window_tokens,
        )
        tier_request = requests.tier_request(request, request_id)

        def open_tier(tier: str) -> Any:
            return self._tiers[tier].generate(tier_request, request_id, deadline)

        return Cascade(plan, open_tier)

    def _submit_shadow(
        self,
        request: router_service_pb2.RouterServiceGenerateRequest,
        request_id: str,
        served_tier: str,
        text: list[str],
    ) -> None:
        assert self._shadow is not None
        shadow_id = f"{request_id}:shadow"
        shadow_request = requests.tier_request(request, shadow_id)
        largest = self._tiers[self._names[-1]]
        # No caller deadline: the caller is gone; the tier's own timeout bounds the shadow.
        self._shadow.submit(
            served_tier,
            "".join(text),
            lambda: largest.generate(shadow_request, shadow_id, None),
        )

    def _check_budget(
        self,
        request: router_service_pb2.RouterServiceGenerateRequest,
        prompt_bytes: int,
        tier: str,
    ) -> None:
        if not request.options.HasField("max_cost_usd"):
            return
        max_tokens = request.sampling.max_tokens or self._settings.limits.max_tokens
        prompt_tokens, completion_tokens = requests.worst_case_tokens(
            request.prompt, prompt_bytes, max_tokens
        )
        worst = token_cost(prompt_tokens, completion_tokens, self._ledger.prices[tier])
        if worst > request.options.max_cost_usd:
            raise FailedPreconditionError(
                f"worst-case cost {worst:.6f} USD on tier {tier} exceeds options.max_cost_usd "
                f"{request.options.max_cost_usd:.6f} USD"
            )

    def _charge(self, run: _Run, cost_usd: float) -> None:
        """Count a request's real cost against its tenant's daily budget."""
        if run.account is not None and self._gate is not None:
            self._gate.charge(run.account, cost_usd)

    def _finish(self, run: _Run, outcome: Outcome) -> router_service_pb2.RouterFinished:
        served = next(u for u in outcome.usages if not u.discarded)
        total = time.monotonic() - run.started
        costs = self._ledger.record(
            RequestRecord(
                request_id=run.request_id,
                tenant=run.tenant,
                decision=run.decision,
                code="OK",
                usages=outcome.usages,
                served=served,
                escalations=tuple(run.escalations),
                degraded_reason=outcome.degraded_reason,
                ttft_seconds=run.ttft,
                total_seconds=total,
                prompt_text=run.prompt_text,
            )
        )
        self._charge(run, costs.cost_usd)
        finished = responses.finished_pb(outcome, costs, run.ttft, total)
        run.recorded = True
        return finished

    def _record_failure(self, run: _Run, code: str) -> None:
        if run.recorded:
            return
        run.recorded = True
        costs = self._ledger.record(
            RequestRecord(
                request_id=run.request_id,
                tenant=run.tenant,
                decision=run.decision,
                code=code,
                usages=run.cascade.usages() if run.cascade is not None else (),
                served=None,
                escalations=tuple(run.escalations),
                degraded_reason="",
                ttft_seconds=run.ttft,
                total_seconds=time.monotonic() - run.started,
                prompt_text=run.prompt_text,
            )
        )
        # Tokens of a failed or cancelled request were generated, and are paid for.
        self._charge(run, costs.cost_usd)


class _Run:
    """Mutable state of one Generate call, for the ledger."""

    __slots__ = (
        "account",
        "cascade",
        "decision",
        "escalations",
        "metadata_sent",
        "prompt_text",
        "recorded",
        "request_id",
        "started",
        "tenant",
        "ttft",
    )

    def __init__(self, request_id: str, tenant: str, started: float) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self.account: Tenant | None = None
        """The authenticated tenant, charged with the cost (``tenant`` may be a bare label)."""
        self.started = started
        self.decision: RoutingDecision | None = None
        self.cascade: Cascade | None = None
        self.escalations: list[tuple[str, str, str]] = []
        self.ttft: float | None = None
        self.recorded = False
        self.prompt_text = ""
        self.metadata_sent = False
