"""Learn-then-Test thresholds and the controller around them: evidence, pins, persistence."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.quality.controller import ThresholdController
from router_svc.quality.ltt import ESCALATE_ALL, candidate_grid, choose_threshold, powered_size
from router_svc.quality.samples import JudgedSample
from router_svc.quality.settings import QualitySettings
from tests.unit.quality.factory import sample

ALPHA = 0.05


def loss_at(samples: Sequence[JudgedSample], t: float) -> float:
    """The empirical weighted loss at ``t``, computed the obvious way."""
    total = sum(s.sample_weight for s in samples)
    lost = sum(s.sample_weight for s in samples if s.score >= t and not s.acceptable)
    return lost / total


def separable(n: int, cut: float, seed: int = 1) -> list[JudgedSample]:
    """Scores uniform in [0, 1); answers below ``cut`` are wrong."""
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n)]
    return [sample(score=s, acceptable=s >= cut, request_id=str(i)) for i, s in enumerate(scores)]


def ltt(samples: Sequence[JudgedSample], fallback: float = 0.65, step: float = 0.01) -> float:
    return choose_threshold(
        [s.score for s in samples],
        [s.acceptable for s in samples],
        [s.sample_weight for s in samples],
        target=0.95,
        delta=0.1,
        grid_step=step,
        fallback=fallback,
    ).threshold


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def controller(
    path: Path | None = None, pinned: Mapping[str, float] | None = None
) -> ThresholdController:
    return ThresholdController(
        ["small", "medium"], 0.65, min_samples=30, state_path=path, clock=Clock(), pinned=pinned
    )


def test_grid_runs_from_one_down_to_zero() -> None:
    grid = candidate_grid(0.01)
    assert len(grid) == 101 and grid[0] == 1.0 and grid[-1] == 0.0
    assert candidate_grid(0.3) == [1.0, 0.7, 0.4, 0.1, 0.0]
    with pytest.raises(ValueError):
        candidate_grid(0)


def test_powered_size_is_the_zero_error_sample_that_certifies() -> None:
    n = powered_size(0.95, 0.1)
    assert n == 45 and 0.95**n <= 0.1 < 0.95 ** (n - 1)


def test_a_separating_score_is_certified_just_above_the_errors() -> None:
    samples = separable(2000, cut=0.3)
    result = choose_threshold(
        [s.score for s in samples],
        [s.acceptable for s in samples],
        [1.0] * len(samples),
        target=0.95,
        delta=0.1,
        grid_step=0.01,
        fallback=0.65,
    )
    assert result.certified and result.p_value <= 0.1
    # Loss 0.05 would allow t near 0.25; the test's margin keeps it a little higher.
    assert 0.25 <= result.threshold <= 0.3
    assert result.loss == pytest.approx(loss_at(samples, result.threshold)) and result.loss <= ALPHA


def test_a_score_that_says_nothing_keeps_only_what_the_error_budget_allows() -> None:
    samples = [sample(score=i / 200, acceptable=i % 2 == 0) for i in range(200)]
    # Half the answers are wrong at every score: only a sliver of traffic fits in 5% loss.
    chosen = ltt(samples)
    assert chosen >= 0.9 and loss_at(samples, chosen) <= ALPHA
    wrong = [sample(score=0.999, acceptable=False) for _ in range(200)]
    assert ltt(wrong) == ESCALATE_ALL


def test_thin_evidence_holds_the_fallback_unless_it_fails_on_it() -> None:
    good = [sample(score=0.9) for _ in range(40)]  # 40 < 45: cannot certify anything yet
    assert ltt(good, fallback=0.65) == 0.65
    bad = [sample(score=0.9, acceptable=i % 4 != 0) for i in range(40)]
    assert ltt(bad, fallback=0.65) == ESCALATE_ALL


def test_more_evidence_of_the_same_quality_never_raises_the_threshold() -> None:
    base = separable(100, cut=0.2, seed=3)
    thresholds = [ltt(base * k) for k in (1, 2, 4, 8, 16)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[-1] < thresholds[0]


def test_weights_count_through_the_effective_size() -> None:
    samples = separable(400, cut=0.2, seed=5)
    heavy = [
        sample(score=s.score, acceptable=s.acceptable, weight=50.0 if i < 8 else 1.0)
        for i, s in enumerate(samples)
    ]
    assert ltt(heavy) >= ltt(samples)  # unequal weights: less effective evidence


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0, 1), st.booleans(), st.floats(1, 10)), max_size=300),
    step=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_property_the_chosen_threshold_holds_the_target_on_its_evidence(
    data: list[tuple[float, bool, float]], step: float
) -> None:
    samples = [sample(score=s, acceptable=ok, weight=w) for s, ok, w in data]
    c = ThresholdController(["small"], 0.65, min_samples=30, grid_step=step)
    c.update("small", samples)
    chosen = c.threshold("small")
    if len(samples) < 30:
        assert chosen == 0.65
    else:
        # Escalating everything is as far as a threshold can go.
        assert loss_at(samples, chosen) <= ALPHA + 1e-12 or chosen == ESCALATE_ALL


@settings(deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=29),
    start=st.floats(0, 1),
)
def test_property_below_min_samples_the_threshold_is_the_start_value(
    data: list[tuple[float, bool]], start: float
) -> None:
    c = ThresholdController(["small"], start, min_samples=30)
    change = c.update("small", [sample(score=s, acceptable=ok) for s, ok in data])
    assert change is None and c.threshold("small") == start
    assert c.state("small").evidence == len(data) and c.state("small").reason == "start"


def test_update_reports_the_change_and_ignores_other_tiers() -> None:
    c = controller()
    assert c.update("small", [sample(tier="medium") for _ in range(500)]) is None
    change = c.update("small", separable(1000, cut=0.2))
    assert change is not None and change.cause == "evidence" and change.old == 0.65
    assert change.new == c.threshold("small") < 0.65 and change.evidence == 1000
    state = c.state("small")
    assert state.certified and state.last_change == change.time
    assert c.threshold("medium") == 0.65
    assert c.update("small", separable(1000, cut=0.2)) is None  # same evidence, no change


def test_given_scores_replace_the_recorded_ones() -> None:
    samples = separable(1000, cut=0.2)
    forwards = controller()
    forwards.update("small", samples)
    backwards = controller()
    backwards.update("small", samples, [1.0 - s.score for s in samples])
    # Backwards, the wrong answers score highest: only the error budget stays on the tier.
    assert backwards.threshold("small") >= 0.9 > forwards.threshold("small")
    with pytest.raises(ValueError):
        backwards.update("small", samples, [0.5])


def test_pin_overrides_and_unpin_returns_to_the_evidence() -> None:
    c = controller()
    pinned = c.pin("small", 0.9)
    assert pinned is not None and pinned.cause == "pin" and c.state("small").pinned
    assert c.update("small", separable(1000, cut=0.2)) is None  # computed moves underneath
    assert c.threshold("small") == 0.9 and c.state("small").computed < 0.65
    unpinned = c.unpin("small")
    assert unpinned is not None and unpinned.new == c.state("small").computed
    assert not c.state("small").pinned
    with pytest.raises(ValueError):
        c.pin("small", 1.5)


async def test_state_survives_a_restart_and_config_pins_win(tmp_path: Path) -> None:
    path = tmp_path / "state" / "thresholds.json"
    c = controller(path)
    c.update("small", separable(1000, cut=0.2))
    c.pin("medium", 0.8)
    await c.save()
    restored = controller(path)
    await restored.load()
    assert restored.states() == c.states()
    configured = controller(path, pinned={"small": 0.99})
    await configured.load()
    assert configured.threshold("small") == 0.99 and configured.state("small").pinned
    assert configured.threshold("medium") == 0.8


async def test_a_corrupt_state_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text("{not json")
    c = controller(path)
    await c.load()
    assert c.threshold("small") == 0.65
    path.write_text(json.dumps({"version": 1, "tiers": {"small": {"threshold": 7}}}))
    await c.load()
    assert c.threshold("small") == 0.65


def test_from_settings_warms_up_escalating_everything() -> None:
    c = ThresholdController.from_settings(
        QualitySettings(pinned={"medium": 0.5}), ["small", "medium"], 0.7
    )
    # No evidence yet: conservative (every answer escalates); a pin still wins.
    assert c.threshold("small") == 1.0 and c.threshold("medium") == 0.5 and c.target == 0.95


def test_from_settings_with_a_start_warmup_defaults_the_start_to_the_policy_threshold() -> None:
    c = ThresholdController.from_settings(
        QualitySettings(warmup="start", pinned={"medium": 0.5}), ["small", "medium"], 0.7
    )
    assert c.threshold("small") == 0.7 and c.threshold("medium") == 0.5
    started = ThresholdController.from_settings(
        QualitySettings(warmup="start", start_threshold=0.4), ["small"], 0.7
    )
    assert started.threshold("small") == 0.4


def test_a_pin_of_an_unknown_tier_is_ignored() -> None:
    c = ThresholdController(["small"], 0.5, pinned={"large": 0.3})
    assert c.states().keys() == {"small"} and c.threshold("small") == 0.5


def test_the_guarantee_holds_over_repeated_draws() -> None:
    """P(true loss at the chosen threshold > 1 - target) <= delta, checked by simulation.

    Scores are uniform and an answer scoring s is wrong with probability 0.6 (1 - s)^2, so the
    true loss at t is 0.2 (1 - t)^3 and exceeds 0.05 below t = 1 - 0.25^(1/3) = 0.37.
    """
    rng = random.Random(2024)
    trials, violations = 300, 0
    for _ in range(trials):
        scores = [rng.random() for _ in range(300)]
        ok = [rng.random() >= 0.6 * (1 - s) ** 2 for s in scores]
        chosen = choose_threshold(
            scores, ok, [1.0] * 300, target=0.95, delta=0.1, grid_step=0.01, fallback=0.65
        ).threshold
        violations += 0.2 * (1 - chosen) ** 3 > 0.05
    # delta plus three binomial standard errors of the simulated rate.
    assert violations / trials <= 0.1 + 3 * (0.1 * 0.9 / trials) ** 0.5


def test_scores_crowded_between_grid_points_are_certified_between_them() -> None:
    # 300 right answers scoring in [0.9721, 0.979) and 30 wrong ones at 0.9715, all inside one
    # cell of the 0.01 grid: 0.98 keeps nothing and 0.97 keeps the wrong ones too (loss 9%).
    # The observed scores are candidates as well, so the bound walks down through the right
    # answers and stops above the wrong ones, instead of escalating everything at 0.98.
    scores = [0.9721 + 0.0069 * i / 300 for i in range(300)] + [0.9715] * 30
    ok = [True] * 300 + [False] * 30
    result = choose_threshold(
        scores, ok, [1.0] * 330, target=0.95, delta=0.1, grid_step=0.01, fallback=1.0
    )
    assert result.certified and result.loss == 0.0
    assert 0.9715 < result.threshold <= 0.9721 + 1e-12
