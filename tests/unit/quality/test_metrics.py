"""Quality metrics: names, bounded labels, and what the reports and states export."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from router_svc.metrics import RouterMetrics
from router_svc.quality.controller import ThresholdController
from router_svc.quality.metrics import QualityMetrics
from router_svc.quality.monitor import CostTotals, QualityMonitor
from tests.unit.quality.factory import sample

NAMES = {
    "tierroute_router_quality_ratio",
    "tierroute_router_quality_ratio_lower_bound",
    "tierroute_router_quality_samples",
    "tierroute_router_quality_target",
    "tierroute_router_escalation_threshold",
    "tierroute_router_escalation_threshold_samples",
    "tierroute_router_escalation_threshold_pinned",
    "tierroute_router_escalation_threshold_last_change_timestamp_seconds",
    "tierroute_router_judged_samples_total",
    "tierroute_router_shadow_cost_usd_total",
    "tierroute_router_judge_cost_usd_total",
    "tierroute_router_quality_savings_ratio",
}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_metric_name_is_registered() -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["agreement"])
    metrics.record_sample(sample())
    metrics.record_report(QualityMonitor("large", 0.95, 0.1).report([sample()]))
    metrics.record_thresholds(ThresholdController(["small"], 0.6).states())
    exported = {m.name for m in registry.collect()}
    # Counters are collected under their name without the _total suffix.
    assert {n.removesuffix("_total") for n in NAMES} == exported


def test_judgments_and_costs_are_counted_with_bounded_labels() -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["agreement"])
    metrics.record_sample(sample(acceptable=False, shadow_cost_usd=0.02, judge_cost_usd=0.001))
    metrics.record_judgment("tiny", "oracle", "maybe", 0.0, 0.0)
    metrics.record_judgment("small", "agreement", "undecided", 0.03, 0.0)
    total = "tierroute_router_judged_samples_total"
    assert value(registry, total, tier="small", judge="agreement", verdict="unacceptable") == 1
    assert value(registry, total, tier="unknown", judge="unknown", verdict="unknown") == 1
    assert value(registry, total, tier="small", judge="agreement", verdict="undecided") == 1
    assert value(registry, "tierroute_router_shadow_cost_usd_total", tier="small") == (
        pytest.approx(0.05)
    )
    assert value(registry, "tierroute_router_judge_cost_usd_total", judge="agreement") == (
        pytest.approx(0.001)
    )


def test_reports_export_overall_as_all_and_prefer_traffic_savings() -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["agreement"])
    samples = [sample(acceptable=i % 10 != 0) for i in range(100)]
    report = QualityMonitor("large", 0.95, 0.1).report(samples, traffic=CostTotals(40, 100, 5, 5))
    metrics.record_report(report)
    assert value(registry, "tierroute_router_quality_ratio", tier="all") == pytest.approx(0.9)
    assert value(registry, "tierroute_router_quality_ratio", tier="small") == pytest.approx(0.9)
    lower = value(registry, "tierroute_router_quality_ratio_lower_bound", tier="all")
    assert lower is not None and lower < 0.9
    assert value(registry, "tierroute_router_quality_samples", tier="small") == 100
    assert value(registry, "tierroute_router_quality_target") == 0.95
    assert value(registry, "tierroute_router_quality_savings_ratio") == pytest.approx(0.5)


def test_threshold_states_are_exported() -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["agreement"])
    controller = ThresholdController(["small"], 0.6, clock=lambda: 1234.0)
    metrics.record_thresholds(controller.states())
    assert value(registry, "tierroute_router_escalation_threshold", tier="small") == 0.6
    name = "tierroute_router_escalation_threshold_last_change_timestamp_seconds"
    assert value(registry, name, tier="small") == 0.0
    controller.pin("small", 0.8)
    metrics.record_thresholds(controller.states())
    assert value(registry, "tierroute_router_escalation_threshold", tier="small") == 0.8
    assert value(registry, "tierroute_router_escalation_threshold_pinned", tier="small") == 1
    assert value(registry, name, tier="small") == 1234.0


def test_the_router_shadow_cost_counter_can_be_shared() -> None:
    registry = CollectorRegistry()
    router = RouterMetrics(registry, ["small", "large"], ["default"])
    metrics = QualityMetrics(registry, ["small"], ["agreement"], shadow_cost=router.shadow_cost)
    metrics.record_sample(sample(shadow_cost_usd=0.5))
    assert value(registry, "tierroute_router_shadow_cost_usd_total", tier="small") == 0.5
    alone = CollectorRegistry()
    RouterMetrics(alone, ["small", "large"], ["default"])
    with pytest.raises(ValueError, match="Duplicated"):
        QualityMetrics(alone, ["small"], ["agreement"])  # without sharing, the names collide
