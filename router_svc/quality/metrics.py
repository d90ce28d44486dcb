"""The quality metrics: served quality and its bound, thresholds in force, judged samples, costs.

Registered on an injected registry (never the global one), labels from bounded sets: tiers
and judges are configured, a verdict is one of :data:`VERDICTS`; anything else is exported as
``"unknown"``. Names are a contract with the recording rules, alerts and dashboards.

``tierroute_router_shadow_cost_usd_total{tier}`` is also defined by the router's own metrics:
pass that counter as ``shadow_cost`` when both live in one registry, so it is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from router_svc.quality.controller import TierThreshold
from router_svc.quality.monitor import QualityReport
from router_svc.quality.samples import JudgedSample

UNKNOWN = "unknown"
OVERALL = "all"
VERDICTS = frozenset({"acceptable", "unacceptable", "undecided"})


class QualityMetrics:
    """Every quality metric, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        tiers: Iterable[str],
        judges: Iterable[str],
        shadow_cost: Counter | None = None,
    ) -> None:
        self._tiers = frozenset(tiers)
        self._judges = frozenset(judges)
        p = "tierroute_router_"
        self.quality_ratio = Gauge(
            p + "quality_ratio",
            'Served quality relative to all-largest, estimated from judged samples (tier="all": '
            "overall)",
            ["tier"],
            registry=registry,
        )
        self.quality_lower_bound = Gauge(
            p + "quality_ratio_lower_bound",
            "One-sided 1-delta lower confidence bound of the quality ratio",
            ["tier"],
            registry=registry,
        )
        self.quality_samples = Gauge(
            p + "quality_samples",
            "Judged samples behind the quality estimate",
            ["tier"],
            registry=registry,
        )
        self.quality_target = Gauge(
            p + "quality_target", "The quality ratio promised (e.g. 0.95)", registry=registry
        )
        self.threshold = Gauge(
            p + "escalation_threshold",
            "Escalation threshold in force: a score below it escalates",
            ["tier"],
            registry=registry,
        )
        self.threshold_samples = Gauge(
            p + "escalation_threshold_samples",
            "Judged samples behind the escalation threshold",
            ["tier"],
            registry=registry,
        )
        self.threshold_pinned = Gauge(
            p + "escalation_threshold_pinned",
            "1 if an operator pinned the escalation threshold, else 0",
            ["tier"],
            registry=registry,
        )
        self.threshold_last_change = Gauge(
            p + "escalation_threshold_last_change_timestamp_seconds",
            "When the escalation threshold last changed (unix seconds; 0: never)",
            ["tier"],
            registry=registry,
        )
        self.judged = Counter(
            p + "judged_samples_total",
            "Judgments of cheaper tiers' answers, by verdict",
            ["tier", "judge", "verdict"],
            registry=registry,
        )
        self.shadow_cost = shadow_cost or Counter(
            p + "shadow_cost_usd_total",
            "Spend of shadow requests (US dollars)",
            ["tier"],
            registry=registry,
        )
        self.judge_cost = Counter(
            p + "judge_cost_usd_total",
            "Spend of judging (US dollars)",
            ["judge"],
            registry=registry,
        )
        self.savings = Gauge(
            p + "quality_savings_ratio",
            "1 - (served + shadow + judge cost) / all-largest cost",
            registry=registry,
        )

    def tier(self, name: str) -> str:
        """``name`` if it is a configured tier, else ``"unknown"``."""
        return name if name in self._tiers else UNKNOWN

    def judge(self, name: str) -> str:
        """``name`` if it is a configured judge, else ``"unknown"``."""
        return name if name in self._judges else UNKNOWN

    def record_judgment(
        self, tier: str, judge: str, verdict: str, shadow_cost_usd: float, judge_cost_usd: float
    ) -> None:
        """Count one judgment (``undecided`` ones too: their costs were spent all the same)."""
        label = verdict if verdict in VERDICTS else UNKNOWN
        self.judged.labels(self.tier(tier), self.judge(judge), label).inc()
        if shadow_cost_usd > 0:
            self.shadow_cost.labels(self.tier(tier)).inc(shadow_cost_usd)
        if judge_cost_usd > 0:
            self.judge_cost.labels(self.judge(judge)).inc(judge_cost_usd)

    def record_sample(self, sample: JudgedSample) -> None:
        """Count a decided judgment from its stored sample."""
        verdict = "acceptable" if sample.acceptable else "unacceptable"
        self.record_judgment(
            sample.tier, sample.judge, verdict, sample.shadow_cost_usd, sample.judge_cost_usd
        )

    def record_report(self, report: QualityReport) -> None:
        """Export a monitor report (overall as ``tier="all"``)."""
        self.quality_target.set(report.target)
        rows: dict[str, Any] = {OVERALL: report.overall}
        for tier, estimate in report.by_tier.items():
            rows[self.tier(tier)] = estimate
        for label, estimate in rows.items():
            self.quality_ratio.labels(label).set(estimate.estimate)
            self.quality_lower_bound.labels(label).set(estimate.lower)
            self.quality_samples.labels(label).set(estimate.samples)
        savings = report.traffic_savings if report.traffic_savings is not None else report.savings
        if savings is not None:
            self.savings.set(savings)

    def record_thresholds(self, states: Mapping[str, TierThreshold]) -> None:
        """Export the controller's per-tier state."""
        for tier, state in states.items():
            label = self.tier(tier)
            self.threshold.labels(label).set(state.threshold)
            self.threshold_samples.labels(label).set(state.evidence)
            self.threshold_pinned.labels(label).set(1.0 if state.pinned else 0.0)
            self.threshold_last_change.labels(label).set(state.last_change or 0.0)
