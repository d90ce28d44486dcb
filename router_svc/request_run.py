"""The mutable state of one Generate call, and what the quality loop is told once it is answered.

The servicer fills a :class:`RequestRun` as the call proceeds (caller, decision, cascade, the
answer recorder, costs, timings) for the ledger's one record and, once the caller has its
answer, :meth:`RequestRun.served_request` turns it into the
:class:`~router_svc.judged_samples.ServedRequest` the quality loop judges and remembers.
Generic over the tier payloads, so it names no protobuf type.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from router_svc.answer_scoring import AnswerRecorder
from router_svc.auth import Caller
from router_svc.cascade import Cascade, Outcome
from router_svc.costs import CostBreakdown
from router_svc.judged_samples import ServedRequest
from router_svc.policy import RoutingDecision

Payload = TypeVar("Payload")
Detail = TypeVar("Detail")


class RequestRun(Generic[Payload, Detail]):
    """Mutable state of one Generate call, for the ledger."""

    __slots__ = (
        "caller",
        "cascade",
        "costs",
        "decision",
        "escalations",
        "metadata_sent",
        "prompt_text",
        "recorded",
        "recorder",
        "request_id",
        "started",
        "ttft",
    )

    def __init__(self, request_id: str, caller: Caller, started: float) -> None:
        self.request_id = request_id
        self.caller = caller
        """Who is charged with the cost: an open caller (its ``x-tenant`` label) until the
        gate says otherwise."""
        self.started = started
        self.decision: RoutingDecision | None = None
        self.cascade: Cascade[Payload, Detail] | None = None
        self.recorder: AnswerRecorder | None = None
        self.costs: CostBreakdown | None = None
        self.escalations: list[tuple[str, str, str]] = []
        self.ttft: float | None = None
        self.recorded = False
        self.prompt_text = ""
        self.metadata_sent = False

    def served_request(
        self, prompt: str, outcome: Outcome[Detail], now: float
    ) -> ServedRequest | None:
        """The answered request for the quality loop (None when its answers were not kept)."""
        if self.recorder is None or self.decision is None or self.costs is None:
            return None
        return ServedRequest(
            request_id=self.request_id,
            tenant=self.caller.name,
            route=self.decision.reason,
            prompt=prompt,
            first_tier=self.decision.tier,
            served_tier=outcome.served_tier,
            tiers_tried=tuple(u.tier for u in outcome.usages),
            escalated=outcome.escalated,
            degraded=outcome.degraded,
            answers=dict(self.recorder.answers),
            routing_score=self.decision.classifier_score,
            cost_usd=self.costs.cost_usd,
            baseline_cost_usd=self.costs.baseline_cost_usd,
            time=now,
        )
