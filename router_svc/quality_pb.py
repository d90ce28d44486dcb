"""Protobuf messages of the quality RPCs: ``SubmitFeedback`` read and answered, ``GetQuality``
built from a :class:`~router_svc.quality_hook.QualitySnapshot`. Conversion only: the figures
come from the quality loop."""

from __future__ import annotations

import math
from collections import defaultdict

from google.protobuf import timestamp_pb2

from router_svc.feedback import StoredFeedback, check_feedback
from router_svc.quality import QualityEstimate
from router_svc.quality_hook import QualitySnapshot
from tierroute.v1 import router_service_pb2 as pb

OVERALL = "all"


def read_feedback(request: pb.SubmitFeedbackRequest) -> tuple[str, float]:
    """The request id and score of valid feedback (INVALID_ARGUMENT naming the field)."""
    score = request.score if request.HasField("score") else None
    return request.request_id, check_feedback(request.request_id, score, request.comment)


def _timestamp(unix_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(unix_seconds * 1e9))
    return stamp


def feedback_pb(stored: StoredFeedback) -> pb.SubmitFeedbackResponse:
    """The stored judgment as the response says it."""
    return pb.SubmitFeedbackResponse(
        request_id=stored.request_id,
        judge=stored.judge,
        score=stored.score,
        acceptable=stored.acceptable,
        acceptance_threshold=stored.acceptance_threshold,
        served_tier=stored.served_tier,
        replaced=stored.replaced,
        recorded_time=_timestamp(stored.recorded_time),
    )


def _estimate_pb(name: str, estimate: QualityEstimate) -> pb.QualityEstimate:
    if estimate.samples == 0 or math.isnan(estimate.estimate):
        # The contract: 0 / 0 / 1 when nothing was judged (a share routed straight to the
        # largest tier alone is no evidence of the cheaper tiers' quality).
        return pb.QualityEstimate(name=name, estimate=0.0, lower_bound=0.0, upper_bound=1.0)
    return pb.QualityEstimate(
        name=name,
        estimate=estimate.estimate,
        lower_bound=estimate.lower,
        upper_bound=estimate.upper,
        samples=estimate.samples,
        effective_samples=estimate.effective_samples,
    )


def quality_pb(snapshot: QualitySnapshot | None, tiers: tuple[str, ...]) -> pb.GetQualityResponse:
    """``GetQualityResponse`` of ``snapshot`` (``enabled=False`` and empty when None)."""
    if snapshot is None:
        return pb.GetQualityResponse(enabled=False)
    report = snapshot.report
    order = {tier: index for index, tier in enumerate(tiers)}
    thresholds = [
        pb.EscalationThreshold(
            tier=state.tier,
            value=state.threshold,
            samples=state.evidence,
            pinned=state.pinned,
            last_change_time=(
                _timestamp(state.last_change) if state.last_change is not None else None
            ),
        )
        for state in sorted(snapshot.thresholds.values(), key=lambda s: order.get(s.tier, 0))
    ]
    by_judge: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for sample in snapshot.samples:
        row = by_judge[sample.judge]
        row[0] += 1
        row[1] += int(sample.acceptable)
        row[2] += sample.judge_cost_usd
    traffic = snapshot.traffic
    savings = report.traffic_savings if report.traffic_savings is not None else report.savings
    return pb.GetQualityResponse(
        enabled=True,
        target=report.target,
        confidence_level=1.0 - report.delta,
        overall=_estimate_pb(OVERALL, report.overall),
        tiers=[
            _estimate_pb(tier, report.by_tier[tier])
            for tier in sorted(report.by_tier, key=lambda t: order.get(t, len(order)))
        ],
        routes=[_estimate_pb(route, report.by_route[route]) for route in sorted(report.by_route)],
        thresholds=thresholds,
        savings_ratio=savings if savings is not None else 0.0,
        cost_usd=traffic.served_cost_usd,
        baseline_cost_usd=traffic.baseline_cost_usd,
        shadow_cost_usd=traffic.shadow_cost_usd,
        judge_cost_usd=traffic.judge_cost_usd,
        judges=[
            pb.JudgeSamples(
                judge=name, samples=int(row[0]), acceptable=int(row[1]), cost_usd=row[2]
            )
            for name, row in sorted(by_judge.items())
        ],
        computed_time=_timestamp(snapshot.computed_time),
    )
