"""RouteLLM's metrics against hand-computed small cases, and the oracle/random properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierroute import routing_metrics as rm
from tierroute_tools.evaluation import policies
from tierroute_tools.evaluation.prices import Price
from tierroute_tools.evaluation.replay import ReplayData, evaluate_policy

# Four prompts; scores rank prompt 0 first for the strong model, prompt 3 last.
# Gains (strong - weak): +1, +1, 0, -1; weak mean 0.5, strong mean 0.75.
WEAK = [0.0, 0.0, 1.0, 1.0]
STRONG = [1.0, 1.0, 1.0, 0.0]
SCORES = [0.1, 0.2, 0.3, 0.4]


def _data(
    weak: list[float], strong: list[float], weak_cost: float, strong_cost: float
) -> ReplayData:
    n = len(weak)
    return ReplayData(
        prompts=tuple(f"p{i}" for i in range(n)),
        sources=("t",) * n,
        weak=np.array(weak),
        strong=np.array(strong),
        weak_cost=np.full(n, weak_cost),
        strong_cost=np.full(n, strong_cost),
        weak_model="w",
        strong_model="s",
        prices={"w": Price(0, 0), "s": Price(0, 0)},
    )


def test_pgr_by_hand() -> None:
    # quality 0.625 recovers half of the 0.5 -> 0.75 gap.
    assert rm.pgr([0.5, 0.625, 0.75, 1.0], 0.5, 0.75).tolist() == [0.0, 0.5, 1.0, 2.0]
    assert rm.pgr([0.3], 0.5, 0.5).tolist() == [0.0]


def test_curve_apgr_and_cpt_by_hand() -> None:
    curve = rm.routing_curve(SCORES, WEAK, STRONG)
    assert curve.strong_share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.quality.tolist() == [0.5, 0.75, 1.0, 1.0, 0.75]
    # PGR 0, 1, 2, 2, 1; trapezoids of width 1/4: (0.5 + 1.5 + 2 + 1.5) / 4 = 1.375
    assert rm.apgr(curve) == pytest.approx(1.375)
    # PGR 0.5 needs quality 0.625: a quarter of the way... half of the first segment.
    assert rm.cpt(curve, 0.5) == pytest.approx(0.125)
    assert rm.cpt(curve, 0.8) == pytest.approx(0.2)


def test_cost_reduction_at_95_by_hand() -> None:
    curve = rm.routing_curve(SCORES, WEAK, STRONG)
    # 95% of 0.75 = 0.7125, reached at share 0.25 * 0.2125 / 0.25 = 0.2125.
    assert rm.cost_reduction_at_quality(curve, 0.95) == pytest.approx(1 - 0.2125)
    # Priced: weak calls $0.1, strong $1: cost 0.4 + 0.2125 * 4 * 0.9 of an all-strong 4.0.
    metrics = evaluate_policy(
        _data(WEAK, STRONG, 0.1, 1.0), policies.classifier_policy(SCORES, 0.25)
    )
    assert metrics["cost_reduction_at_95"] == pytest.approx(0.7875)
    assert metrics["cost_reduction_at_95_priced"] == pytest.approx(1 - (0.4 + 0.765) / 4)
    assert metrics["apgr"] == pytest.approx(1.375)
    assert (metrics["cpt50"], metrics["cpt80"]) == (pytest.approx(0.125), pytest.approx(0.2))
    # Threshold 0.25: prompts 0 and 1 go strong -> quality 1.0, cost 2 * 1 + 2 * 0.1.
    assert metrics["strong_share_at_threshold"] == 0.5
    assert metrics["quality_at_threshold"] == 1.0
    assert metrics["cost_usd_at_threshold"] == pytest.approx(2.2)


def test_ties_interpolate_like_random() -> None:
    curve = rm.routing_curve([0.5] * 4, WEAK, STRONG)
    assert curve.strong_share.tolist() == [0.0, 1.0]
    assert rm.apgr(curve) == pytest.approx(0.5)
    assert rm.cpt(curve, 0.5) == pytest.approx(0.5)


def test_fixed_policies() -> None:
    data = _data(WEAK, STRONG, 0.1, 1.0)
    weak = evaluate_policy(data, policies.always_weak())
    strong = evaluate_policy(data, policies.always_strong())
    assert weak["apgr"] is None and weak["cpt50"] is None
    assert weak["cost_reduction_at_95"] is None  # 0.5 < 0.95 * 0.75
    assert weak["cost_reduction_at_threshold"] == pytest.approx(0.9)
    assert strong["cpt50"] == 1.0 and strong["cost_reduction_at_95"] == 0.0
    assert strong["quality_at_threshold"] == 0.75


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_oracle_dominates_any_policy(draw: st.DataObject) -> None:
    n = draw.draw(st.integers(2, 40))
    weak = draw.draw(st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=n, max_size=n))
    strong = draw.draw(st.lists(st.sampled_from([0.0, 0.7, 1.0]), min_size=n, max_size=n))
    scores = draw.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    data = _data(weak, strong, 0.0, 1.0)
    oracle = policies.oracle_policy(data.weak, data.strong)
    assert oracle.scores is not None
    best = rm.routing_curve(oracle.scores, weak, strong)
    other = rm.routing_curve(scores, weak, strong)
    grid = np.linspace(0, 1, 101)
    assert np.all(
        np.interp(grid, best.strong_share, best.quality)
        >= np.interp(grid, other.strong_share, other.quality) - 1e-9
    )
    if best.strong_quality > best.weak_quality:  # PGR's sign flips when strong is worse
        assert rm.apgr(best) >= rm.apgr(other) - 1e-9
    assert rm.cost_reduction_at_quality(best) >= rm.cost_reduction_at_quality(other) - 1e-9


def test_random_is_the_diagonal_on_a_large_set() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    weak = (rng.random(n) < 0.6).astype(float)
    strong = (rng.random(n) < 0.8).astype(float)
    random = policies.random_policy(n, seed=3)
    assert random.scores is not None
    curve = rm.routing_curve(random.scores, weak, strong)
    assert rm.apgr(curve) == pytest.approx(0.5, abs=0.02)
    assert rm.cpt(curve, 0.5) == pytest.approx(0.5, abs=0.03)
    # PGR tracks the strong-call share everywhere, not only on average.
    grid = np.linspace(0.05, 0.95, 19)
    assert np.max(np.abs(np.interp(grid, curve.strong_share, curve.pgr) - grid)) < 0.05
