"""The quality monitor: the ratio, its bounds, per tier and route, and savings net of shadows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.quality.monitor import CostTotals, QualityMonitor, savings_ratio
from tests.unit.quality.factory import sample


def monitor() -> QualityMonitor:
    return QualityMonitor(largest="large", target=0.95, delta=0.1)


def test_largest_served_counts_as_one_and_cheaper_as_its_verdict() -> None:
    m = monitor()
    assert m.contribution(sample(acceptable=False, served_tier="large")) == 1.0
    assert m.contribution(sample(acceptable=False)) == 0.0
    assert m.contribution(sample(acceptable=True)) == 1.0


def test_estimate_is_the_weighted_mean_with_kish_effective_size() -> None:
    samples = [sample(acceptable=True, weight=3.0), sample(acceptable=False, weight=1.0)]
    estimate = monitor().estimate(samples)
    assert estimate.estimate == pytest.approx(0.75)
    assert estimate.samples == 2
    assert estimate.effective_samples == pytest.approx(16 / 10)
    assert estimate.lower < 0.75 < estimate.upper


def test_no_samples_means_no_knowledge() -> None:
    estimate = monitor().estimate([])
    assert math.isnan(estimate.estimate)
    assert (estimate.lower, estimate.upper, estimate.samples) == (0.0, 1.0, 0)
    assert monitor().estimate([], direct_largest_share=1.0).lower == 1.0


def test_direct_largest_share_raises_the_overall_ratio_linearly() -> None:
    samples = [sample(acceptable=i % 5 != 0) for i in range(100)]  # 80% acceptable
    plain = monitor().estimate(samples)
    mixed = monitor().estimate(samples, direct_largest_share=0.5)
    assert mixed.estimate == pytest.approx(0.9)
    assert mixed.lower == pytest.approx(0.5 + 0.5 * plain.lower)
    with pytest.raises(ValueError):
        monitor().estimate(samples, direct_largest_share=1.5)


def test_report_groups_by_tier_and_route_and_nets_out_shadow_costs() -> None:
    samples = [
        sample(tier="small", route="classifier", acceptable=True, weight=10.0),
        sample(tier="small", route="rule:greeting", acceptable=False, weight=10.0),
        sample(tier="medium", route="classifier", acceptable=True, served_tier="large"),
    ]
    report = monitor().report(samples, traffic=CostTotals(50.0, 100.0, 2.0, 1.0))
    assert set(report.by_tier) == {"small", "medium"}
    assert report.by_tier["small"].estimate == pytest.approx(0.5)
    assert report.by_route["classifier"].estimate == pytest.approx(1.0)
    assert report.by_route["rule:greeting"].samples == 1
    # Served 21 * 0.001 and baseline 21 * 0.01 weighted; shadows 3 * 0.01 counted as spent.
    assert report.sample_costs.served_cost_usd == pytest.approx(0.021)
    assert report.sample_costs.shadow_cost_usd == pytest.approx(0.03)
    assert report.savings == pytest.approx(1 - (0.021 + 0.03) / 0.21)
    assert report.traffic_savings == pytest.approx(0.47)
    assert report.target == 0.95 and not report.meets_target


def test_savings_ratio_needs_a_baseline() -> None:
    assert savings_ratio(CostTotals(1.0, 0.0)) is None
    assert savings_ratio(CostTotals(30.0, 100.0, 5.0, 5.0)) == pytest.approx(0.6)


def test_the_target_is_met_only_by_the_lower_bound() -> None:
    good = [sample(acceptable=True) for _ in range(200)]
    assert monitor().report(good).meets_target
    assert not monitor().report(good[:10]).meets_target  # same quality, too little evidence


@settings(deadline=None)
@given(
    pattern=st.lists(st.tuples(st.booleans(), st.floats(1, 20)), min_size=1, max_size=20),
    copies=st.integers(1, 8),
    more=st.integers(1, 8),
)
def test_property_more_evidence_of_the_same_quality_never_loosens_the_lower_bound(
    pattern: list[tuple[bool, float]], copies: int, more: int
) -> None:
    def bound(times: int) -> float:
        samples = [sample(acceptable=ok, weight=w) for ok, w in pattern] * times
        return monitor().estimate(samples).lower

    assert bound(copies + more) >= bound(copies) - 1e-12
