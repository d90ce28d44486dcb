"""The router's stream events as ``tierroute.v1`` messages: the decision, an escalation, the
final summary, and the status of an exhausted budget. Pure conversions; the servicer decides
when to send them.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from router_svc.cascade import Escalation, Outcome
from router_svc.costs import CostBreakdown
from router_svc.ledger import BudgetExhaustedError
from router_svc.policy import RoutingDecision
from tierroute.status import to_rpc_status
from tierroute.v1 import common_pb2, model_service_pb2, router_service_pb2

_CAUSES = {
    "low_confidence": router_service_pb2.ESCALATION_CAUSE_LOW_CONFIDENCE,
    "early_window": router_service_pb2.ESCALATION_CAUSE_EARLY_WINDOW,
    "tier_error": router_service_pb2.ESCALATION_CAUSE_TIER_ERROR,
}


def decision_pb(decision: RoutingDecision) -> router_service_pb2.Decision:
    """The routing decision (``Routed`` and ``RouteResponse``)."""
    message = router_service_pb2.Decision(
        tier=decision.tier,
        reason=decision.reason,
        threshold=decision.threshold,
        decision_latency_ms=decision.latency_seconds * 1000,
    )
    if decision.classifier_score is not None:
        message.classifier_score = decision.classifier_score
    return message


def escalated_pb(event: Escalation) -> router_service_pb2.Escalated:
    """One move up the chain."""
    return router_service_pb2.Escalated(
        from_tier=event.from_tier,
        to_tier=event.to_tier,
        cause=_CAUSES[event.cause.value],
        confidence_score=event.confidence_score,
        reason=event.reason,
        discarded_tokens=event.discarded_tokens,
    )


def finished_pb(
    outcome: Outcome[model_service_pb2.Finished],
    costs: CostBreakdown,
    ttft_seconds: float | None,
    total_seconds: float,
) -> router_service_pb2.RouterFinished:
    """The stream's last event: served tier, usage and cost per tier, savings, confidence."""
    finished = router_service_pb2.RouterFinished(
        served_tier=outcome.served_tier,
        finish_reason=outcome.result.detail.finish_reason,
        tier_usage=[
            router_service_pb2.TierUsage(
                tier=u.tier,
                usage=common_pb2.Usage(
                    prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens
                ),
                cost_usd=cost,
                discarded=u.discarded,
            )
            for u, cost in zip(outcome.usages, costs.per_tier, strict=True)
        ],
        cost_usd=costs.cost_usd,
        baseline_cost_usd=costs.baseline_cost_usd,
        savings_usd=costs.savings_usd,
        escalated=outcome.escalated,
        degraded=outcome.degraded,
        degraded_reason=outcome.degraded_reason,
        ttft_ms=(ttft_seconds or total_seconds) * 1000,
        total_ms=total_seconds * 1000,
        confidence=outcome.result.detail.confidence,
    )
    return finished


def quota_status(error: BudgetExhaustedError) -> grpc.Status:
    """RESOURCE_EXHAUSTED with RetryInfo (time to the reset) and a QuotaFailure naming it."""
    status = to_rpc_status(error)
    status.details.add().Pack(
        error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=f"tenant:{error.tenant}", description=error.message
                )
            ]
        )
    )
    converted: grpc.Status = rpc_status.to_status(status)
    return converted
