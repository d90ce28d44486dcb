"""``tierroute.v1.RouterService``: a thin adapter between the protos and the routing domain.

Generate: read the message once (:func:`~router_svc.route_request.read_generate`: the only place the
request is read from the protobuf), authenticate (the gate's caller), check the caller's permissions
and spend budget, admit, deliver the validation verdict (a
:class:`~router_svc.route_request.RouteRequest`), decide (policy), run the cascade over the tier
clients, convert its events to the stream, record the request in the cost ledger and charge its cost
to the caller. Errors are raised as domain errors; the server's interceptor maps them to gRPC
statuses (an exhausted budget adds a ``QuotaFailure``); the messages themselves are built in
:mod:`router_svc.events`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import structlog

from router_svc import events as event_pb
from router_svc import quality_pb
from router_svc.answer_scoring import AnswerRecorder
from router_svc.auth import Caller, Gate, OpenCaller, RequestedOptions
from router_svc.cascade import (
    Cascade,
    CascadePlan,
    Escalation,
    FallbackModeName,
    Forward,
    Outcome,
)
from router_svc.config import RouterSettings
from router_svc.costs import CostBreakdown, SpendCap, request_worst_case, token_cost
from router_svc.ledger import BudgetExhaustedError, CostLedger, RequestRecord
from router_svc.metrics import RouterMetrics
from router_svc.policy import RoutingDecision, RoutingPolicy
from router_svc.quality_hook import QualityHook, QualityOff
from router_svc.request_run import RequestRun
from router_svc.route_request import Arrival, RouteRequest, read_generate, read_route
from router_svc.shadow import ShadowOpener, ShadowSampler
from router_svc.tiers import TierItem, TierPool
from tierroute.errors import CancelledError as CallerGoneError
from tierroute.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    OverloadedError,
    TierrouteError,
)
from tierroute.status import REQUEST_ID_KEY
from tierroute.v1 import common_pb2, model_service_pb2, router_service_pb2, router_service_pb2_grpc

TENANT_KEY = "x-tenant"
AUTHORIZATION_KEY = "authorization"
Context = grpc.aio.ServicerContext[Any, Any]
Response = router_service_pb2.RouterServiceGenerateResponse
TierCascade = Cascade[common_pb2.TokenDelta, model_service_pb2.Finished]
_Run = RequestRun[common_pb2.TokenDelta, model_service_pb2.Finished]


def _metadata(context: Context, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value[:128]
    return ""


def _accepted(arrival: Arrival) -> RouteRequest:
    """The validated request; raises what validation found (once the caller passed the gate)."""
    if isinstance(arrival.verdict, InvalidArgumentError):
        raise arrival.verdict
    return arrival.verdict


def _requested(arrival: Arrival) -> RequestedOptions:
    """The options the caller's permissions are checked against (from the validated request
    when it is valid; an invalid one is refused after the gate anyway)."""
    verdict = arrival.verdict
    if isinstance(verdict, InvalidArgumentError):
        mode = FallbackModeName.STREAMING if arrival.streaming else None
        return RequestedOptions(arrival.tier_hint, mode)
    return RequestedOptions(arrival.tier_hint, verdict.fallback_mode, verdict.fallback_threshold)


def _tier_request(route: RouteRequest, request_id: str) -> model_service_pb2.GenerateRequest:
    """The model service request for ``route`` (prompt and sampling passed on as received)."""
    return model_service_pb2.GenerateRequest(
        prompt=route.prompt, sampling=route.sampling, request_id=request_id
    )


class RouterServicer(router_service_pb2_grpc.RouterServiceServicer):
    """Serves Route, Generate and ListTiers."""

    def __init__(
        self,
        settings: RouterSettings,
        policy: RoutingPolicy,
        tiers: TierPool,
        ledger: CostLedger,
        metrics: RouterMetrics,
        shadow: ShadowSampler,
        gate: Gate,
        quality: QualityHook | None = None,
    ) -> None:
        self._settings = settings
        self._quality: QualityHook = quality if quality is not None else QualityOff()
        self._gate = gate
        self._shadow = shadow
        self._names = settings.tier_names
        self._policy = policy
        self._tiers = tiers
        self._ledger = ledger
        self._metrics = metrics
        self._active = 0

    def attach_quality(self, quality: QualityHook) -> None:
        """Use ``quality`` from now on (the server opens the loop before it reports SERVING)."""
        self._quality = quality

    async def Route(
        self, request: router_service_pb2.RouteRequest, context: Context
    ) -> router_service_pb2.RouteResponse:
        """Decide the tier of a prompt without generating."""
        arrival = read_route(request, self._settings.limits)
        caller = self._authenticate(context, "Route")
        # Route spends nothing: only the tier hint needs a permission here.
        caller.check_options(RequestedOptions(arrival.tier_hint))
        await caller.admit()
        decision = await self._decide(_accepted(arrival))
        return router_service_pb2.RouteResponse(decision=event_pb.decision_pb(decision))

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

    async def SubmitFeedback(
        self, request: router_service_pb2.SubmitFeedbackRequest, context: Context
    ) -> router_service_pb2.SubmitFeedbackResponse:
        """Store the caller's score of one of its recent requests as a judged sample."""
        caller = self._authenticate(context, "SubmitFeedback")
        await caller.admit()
        request_id, score = quality_pb.read_feedback(request)
        stored = await self._quality.feedback(request_id, caller.name, score)
        return quality_pb.feedback_pb(stored)

    async def GetQuality(
        self, request: router_service_pb2.GetQualityRequest, context: Context
    ) -> router_service_pb2.GetQualityResponse:
        """The served quality, its evidence and the thresholds in force."""
        self._authenticate(context, "GetQuality")
        return quality_pb.quality_pb(await self._quality.snapshot(), self._names)

    async def _decide(self, route: RouteRequest) -> RoutingDecision:
        decision = await self._policy.decide(route.routing_text, route.tier_hint)
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
        limits = self._settings.limits
        arrival = read_generate(request, limits, _metadata(context, REQUEST_ID_KEY))
        structlog.contextvars.bind_contextvars(request_id=arrival.request_id)
        run: _Run = RequestRun(
            arrival.request_id, OpenCaller(_metadata(context, TENANT_KEY)), started
        )
        if self._settings.logging.log_prompts:
            # Even for a request refused below: the log says what was asked.
            run.prompt_text = arrival.routing_text
        admitted = False
        try:
            run.caller = self._authenticate(context, "Generate")
            run.caller.check_options(_requested(arrival))
            # Before the rate limit: a refused request should not use up the caller's rate.
            await run.caller.check_budget()
            await run.caller.admit()
            route = _accepted(arrival)
            if self._active >= limits.max_concurrent_streams:
                raise OverloadedError(
                    f"{self._active} streams in flight (limit {limits.max_concurrent_streams})",
                    retry_after_seconds=limits.retry_after_seconds,
                )
            await run.caller.open_stream()
            admitted = True
            self._active += 1
            self._metrics.active_streams.inc()
            run.decision = await self._decide(route)
            self._check_budget(route, run.decision.tier)
            # The worst case over every tier the request may reach, held before any is called.
            await run.caller.reserve(self._worst_case_usd(route, run.decision.tier))
            # A caller's own fallback_threshold is a confidence threshold: the learned score
            # is still computed (for judging) but the cascade compares the confidence.
            own = route.fallback_threshold is not None
            run.recorder = self._quality.recorder(route.routing_text, attach_score=not own)
            run.cascade = self._cascade(route, run.decision, deadline, run.recorder)
            async for response in self._stream(route, run, context):
                yield response
        except TierrouteError as exc:
            self._record_failure(run, exc.kind.value)
            if not run.metadata_sent:
                # Refused before anything was sent: the caller still learns the request id.
                await self._send_metadata(run, context)
            if isinstance(exc, BudgetExhaustedError):
                await context.abort_with_status(event_pb.quota_status(exc))
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
            # Settles the reservation to the charged cost and releases the stream slot.
            await run.caller.close()

    def _authenticate(self, context: Context, method: str) -> Caller:
        """The caller, as the gate sees it (UNAUTHENTICATED when a key is needed and wrong)."""
        header = None
        for name, value in context.invocation_metadata() or ():
            if name == AUTHORIZATION_KEY and isinstance(value, str):
                header = value
        return self._gate.caller(method, header, _metadata(context, TENANT_KEY))

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
        self, route: RouteRequest, run: _Run, context: Context
    ) -> AsyncIterator[Response]:
        """The response stream of an admitted, decided request."""
        assert run.cascade is not None and run.decision is not None
        m = self._metrics
        # The quality loop's judged samples replace the similarity shadow when it runs.
        wants = not self._quality.enabled and self._shadow.wants()
        shadow_text: list[str] | None = [] if wants else None
        # Closing the cascade (caller gone, error) closes the tier stream and cancels its call.
        async with aclosing(run.cascade.run()) as events:
            # The routed tier's call starts now, while the metadata and Routed go out: its time
            # to first token overlaps with those writes instead of following them.
            pending = asyncio.ensure_future(anext(events))
            try:
                await self._send_metadata(run, context)
                yield Response(
                    routed=router_service_pb2.Routed(
                        decision=event_pb.decision_pb(run.decision), request_id=run.request_id
                    )
                )
                event = await pending
                while True:
                    if isinstance(event, Forward):
                        if run.ttft is None:
                            run.ttft = time.monotonic() - run.started
                            m.child(m.ttft, m.tier(event.tier)).observe(run.ttft)
                        if shadow_text is not None:
                            shadow_text.append(event.chunk.payload.text)
                        yield Response(delta=event.chunk.payload)
                    elif isinstance(event, Escalation):
                        run.escalations.append((event.from_tier, event.to_tier, event.cause.value))
                        m.record_escalation(event.from_tier, event.to_tier, event.cause)
                        yield Response(escalated=event_pb.escalated_pb(event))
                    else:
                        yield Response(finished=self._finish(run, event))
                        if shadow_text is not None and not (event.escalated or event.degraded):
                            self._submit_shadow(route, event.served_tier, shadow_text)
                        self._finished(route, run, event)
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
        route: RouteRequest,
        decision: RoutingDecision,
        deadline: float | None,
        recorder: AnswerRecorder | None,
    ) -> TierCascade:
        policy = self._settings.policy
        # The caller's own threshold (when allowed) overrides the controller's as well.
        thresholds = self._quality.thresholds() if route.fallback_threshold is None else {}
        plan = CascadePlan(
            tiers=self._names,
            start=self._names.index(decision.tier),
            mode=policy.fallback_mode if route.fallback_mode is None else route.fallback_mode,
            threshold=(
                policy.fallback_threshold
                if route.fallback_threshold is None
                else route.fallback_threshold
            ),
            early_window_tokens=policy.early_window_tokens,
            thresholds=thresholds,
            spend_cap=self._spend_cap(route),
        )
        request_id = route.request_id
        tier_request = _tier_request(route, request_id)

        def open_tier(tier: str) -> AsyncGenerator[TierItem, None]:
            def counted(tokens: int) -> None:
                cascade.record_prompt_tokens(tier, tokens)

            stream = self._tiers[tier].generate(tier_request, request_id, deadline, counted)
            return stream if recorder is None else recorder.watch(tier, stream)

        cascade: TierCascade = Cascade(plan, open_tier)
        return cascade

    def _shadow_opener(self, route: RouteRequest) -> ShadowOpener:
        """Opens the replay of ``route`` on the largest tier (no caller deadline: the caller
        is gone; the tier's own timeout bounds it)."""
        shadow_id = f"{route.request_id}:shadow"
        shadow_request = _tier_request(route, shadow_id)
        largest = self._tiers[self._names[-1]]
        return lambda: largest.generate(shadow_request, shadow_id, None)

    def _finished(
        self, route: RouteRequest, run: _Run, outcome: Outcome[model_service_pb2.Finished]
    ) -> None:
        """Hand the answered request to the quality loop and its outcome to the learned start
        tier (after the caller has its answer)."""
        if run.decision is not None and not outcome.degraded:
            # A tier that failed says nothing about the prompt: only confidence escalations teach.
            failed = {f for f, _, cause in run.escalations if cause == "tier_error"}
            escalated = {f for f, _, _ in run.escalations} - failed
            tried = tuple(u.tier for u in outcome.usages if u.tier not in failed)
            self._policy.learn(route.routing_text, run.decision, tried, escalated)
        served = run.served_request(route.routing_text, outcome, time.time())
        if served is not None:
            self._quality.finished(served, self._shadow_opener(route))

    def _submit_shadow(self, route: RouteRequest, served_tier: str, text: list[str]) -> None:
        self._shadow.submit(served_tier, "".join(text), self._shadow_opener(route))

    def _worst_case_usd(self, route: RouteRequest, tier: str) -> float:
        """The most ``route`` may cost from ``tier`` over the tiers it may reach (within its
        own ``max_cost_usd``): what its budget reserves before any tier is called."""
        return request_worst_case(
            self._names,
            self._names.index(tier),
            self._ledger.prices,
            route.worst_case_prompt_tokens,
            route.max_tokens or self._settings.limits.max_tokens,
            route.max_cost_usd,
        ).cost_usd

    def _check_budget(self, route: RouteRequest, tier: str) -> None:
        """Refuse when even the routed tier's worst case breaks ``options.max_cost_usd`` (the
        cascade then keeps every further call within it: :class:`SpendCap`)."""
        cap = self._spend_cap(route)
        if cap is not None and not cap.allows((), tier):
            raise FailedPreconditionError(
                f"worst-case cost {cap.call_usd[tier]:.6f} USD on tier {tier} exceeds "
                f"options.max_cost_usd {cap.limit_usd:.6f} USD"
            )

    def _spend_cap(self, route: RouteRequest) -> SpendCap | None:
        """The caller's cap over its tier calls, each priced at its worst case (as
        :func:`~router_svc.costs.request_worst_case` prices them); None without a cap."""
        if route.max_cost_usd is None:
            return None
        max_tokens = route.max_tokens or self._settings.limits.max_tokens
        prices = self._ledger.prices
        calls = {
            t: token_cost(route.worst_case_prompt_tokens, max_tokens, prices[t])
            for t in self._names
        }
        return SpendCap(calls, route.max_cost_usd)

    def _finish(
        self, run: _Run, outcome: Outcome[model_service_pb2.Finished]
    ) -> router_service_pb2.RouterFinished:
        total = time.monotonic() - run.started
        costs = self._record(run, "OK", outcome, total)
        run.costs = costs
        return event_pb.finished_pb(outcome, costs, run.ttft, total)

    def _record_failure(self, run: _Run, code: str) -> None:
        """Record a call that ended without its answer, unless its answer was recorded."""
        if not run.recorded:
            self._record(run, code)

    def _record(
        self,
        run: _Run,
        code: str,
        outcome: Outcome[model_service_pb2.Finished] | None = None,
        total_seconds: float | None = None,
    ) -> CostBreakdown:
        """Record the call in the ledger once (an answer, or how it failed) and charge its cost.

        Tokens of a failed or cancelled request were generated too, and are paid for.
        """
        run.recorded = True
        if outcome is not None:
            usages = outcome.usages
            served = next(u for u in usages if not u.discarded)
            degraded_reason = outcome.degraded_reason
        else:
            usages = run.cascade.usages() if run.cascade is not None else ()
            served = None
            degraded_reason = ""
        costs = self._ledger.record(
            RequestRecord(
                request_id=run.request_id,
                tenant=run.caller.name,
                decision=run.decision,
                code=code,
                usages=usages,
                served=served,
                escalations=tuple(run.escalations),
                degraded_reason=degraded_reason,
                ttft_seconds=run.ttft,
                total_seconds=(
                    time.monotonic() - run.started if total_seconds is None else total_seconds
                ),
                prompt_text=run.prompt_text,
            )
        )
        run.caller.charge(costs.cost_usd)
        return costs
