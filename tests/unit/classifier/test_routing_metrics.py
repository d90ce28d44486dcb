"""RouteLLM's routing metrics on cases small enough to compute by hand, and their invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from tierroute import routing_metrics as rm

# Four prompts; only the second one is answered better by the strong model.
WEAK = [1.0, 0.0, 1.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 0.0]
ORACLE = [0.9, 0.1, 0.8, 0.7]  # the prompt with the gain has the lowest score


def test_curve_of_an_oracle_router() -> None:
    curve = rm.routing_curve(ORACLE, WEAK, STRONG)
    assert curve.weak_quality == 0.5 and curve.strong_quality == 0.75
    np.testing.assert_allclose(curve.strong_share, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.quality, [0.5, 0.75, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(curve.pgr, [0, 1, 1, 1, 1])
    # trapezoids: 0.25 * (0 + 1) / 2 + 0.75 * 1
    assert rm.apgr(curve) == pytest.approx(0.875)
    assert rm.cpt(curve, 0.5) == pytest.approx(0.125)
    assert rm.cpt(curve, 0.8) == pytest.approx(0.2)


def test_thresholds_reproduce_each_curve_point() -> None:
    curve = rm.routing_curve(ORACLE, WEAK, STRONG)
    for threshold, share, quality in zip(
        curve.thresholds, curve.strong_share, curve.quality, strict=True
    ):
        point = rm.operating_point(ORACLE, WEAK, STRONG, threshold)
        assert point.strong_share == pytest.approx(share)
        assert point.quality == pytest.approx(quality)


def test_random_router_scores_one_half() -> None:
    rng = np.random.default_rng(0)
    weak = rng.integers(0, 2, 500).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 500))
    curve = rm.routing_curve(np.full(500, 0.3), weak, strong)
    # All scores tie: the curve is the straight line from all-weak to all-strong.
    assert rm.apgr(curve) == pytest.approx(0.5)
    assert rm.cpt(curve, 0.5) == pytest.approx(0.5)
    assert rm.cpt(curve, 0.8) == pytest.approx(0.8)


def test_cost_reduction_at_quality() -> None:
    curve = rm.routing_curve(ORACLE, WEAK, STRONG)
    # 95% of 0.75 = 0.7125 is reached at share 0.25 * (0.2125 / 0.25) = 0.2125.
    assert rm.cost_reduction_at_quality(curve, 0.95) == pytest.approx(1 - 0.2125)
    assert rm.cost_reduction(0.4, weak_cost_ratio=0.1) == pytest.approx(0.54)
    with pytest.raises(ValueError):
        rm.cost_reduction(0.4, weak_cost_ratio=1.5)


def test_share_for_quality_edges() -> None:
    curve = rm.routing_curve(ORACLE, WEAK, STRONG)
    assert rm.share_for_quality(curve, 0.4) == 0.0  # the weak model alone is enough
    assert rm.share_for_quality(curve, 0.9) == 1.0  # not reachable at all


def test_threshold_for_share_never_exceeds_the_share() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    weak = rng.integers(0, 2, 1000)
    strong = rng.integers(0, 2, 1000)
    curve = rm.routing_curve(scores, weak, strong)
    for share in (0.05, 0.33, 0.6, 0.99):
        point = rm.operating_point(scores, weak, strong, rm.threshold_for_share(curve, share))
        assert share - 0.002 <= point.strong_share <= share


def test_threshold_for_quality_is_the_cheapest_point_reaching_it() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(800)
    weak = rng.integers(0, 2, 800)
    strong = np.maximum(weak, rng.integers(0, 2, 800))
    curve = rm.routing_curve(scores, weak, strong)
    target = 0.95 * curve.strong_quality
    point = rm.operating_point(scores, weak, strong, rm.threshold_for_quality(curve, target))
    assert point.quality >= target
    below = curve.quality[curve.strong_share < point.strong_share]
    assert (below < target).all()


def test_auroc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, 400) / 20.0
    labels = rng.random(400) < 0.3 + 0.4 * scores
    assert rm.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        rm.auroc([0.1, 0.2], [True, True])


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        rm.routing_curve([0.1, 0.2], [1.0], [1.0, 0.0])
    with pytest.raises(ValueError):
        rm.routing_curve([], [], [])
    with pytest.raises(ValueError):
        rm.routing_curve([np.nan], [1.0], [1.0])


def test_summary_reports_the_headline_numbers() -> None:
    result = rm.summary(ORACLE, WEAK, STRONG, labels=[True, False, True, True])
    assert result["apgr"] == pytest.approx(0.875)
    assert result["auroc"] == pytest.approx(1.0)
    assert result["n"] == 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])),
        min_size=2,
        max_size=60,
        unique_by=lambda row: row[0],
    )
)
def test_reversed_ranking_mirrors_apgr(rows: list[tuple[float, float, float]]) -> None:
    scores, weak, strong = (np.array(column) for column in zip(*rows, strict=True))
    if weak.mean() == strong.mean():
        return  # no gap: PGR is undefined and reported as 0 on both sides
    forward = rm.apgr(rm.routing_curve(scores, weak, strong))
    backward = rm.apgr(rm.routing_curve(-scores, weak, strong))
    assert forward + backward == pytest.approx(1.0)
