"""Head training is deterministic and picks by validation; calibration hits its target."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tierroute import routing_metrics
from tierroute_tools.classifier_training.calibrate import (
    Scored,
    Target,
    calibration,
    choose_threshold,
    threshold_table,
)
from tierroute_tools.classifier_training.graph import numpy_head
from tierroute_tools.classifier_training.train import fit_head, select_head


def synthetic(
    n: int, seed: int
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Unit-norm 16-d features whose first coordinate carries the label, plus qualities."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.7
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += np.where(labels, 0.8, -0.8)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    strong = (rng.random(n) < 0.85).astype(float)
    # Label False = the weak model falls short of the strong one.
    weak = np.where(labels, strong, 0.0)
    return x, labels, weak, strong


def test_training_is_deterministic() -> None:
    x, y, _, _ = synthetic(600, seed=0)
    first, second = fit_head(x, y, 1.0), fit_head(x, y, 1.0)
    np.testing.assert_array_equal(first.weight, second.weight)
    assert first.bias == second.bias


def test_head_learns_the_signal() -> None:
    x, y, _, _ = synthetic(2000, seed=1)
    head = fit_head(x, y, 10.0)
    assert int(np.argmax(np.abs(head.weight))) == 0
    held_x, held_y, _, _ = synthetic(1000, seed=2)
    assert routing_metrics.auroc(numpy_head(held_x, head), held_y) > 0.8


def test_selection_picks_the_best_validation_apgr() -> None:
    x, y, _, _ = synthetic(1500, seed=3)
    vx, vy, vw, vs = synthetic(800, seed=4)
    trained = select_head(x, y, vx, vy, vw, vs, grid=(0.001, 1.0, 10.0))
    assert len(trained.candidates) == 3
    best = max(trained.candidates, key=lambda c: c.apgr)
    assert trained.c == best.c
    scores = numpy_head(vx, trained.head)
    apgr = routing_metrics.apgr(routing_metrics.routing_curve(scores, vw, vs))
    assert apgr == pytest.approx(best.apgr)


def test_one_class_labels_are_refused() -> None:
    x, _, _, _ = synthetic(50, seed=5)
    with pytest.raises(ValueError, match="both classes"):
        fit_head(x, np.ones(50, dtype=bool), 1.0)


@pytest.fixture(scope="module")
def validation() -> Scored:
    x, _, weak, strong = synthetic(3000, seed=6)
    head = fit_head(*synthetic(3000, seed=7)[:2], 1.0)
    return Scored(scores=numpy_head(x, head), weak=weak, strong=strong)


@pytest.mark.parametrize("reduction", [0.3, 0.6, 0.8])
def test_cost_reduction_target_is_met_within_one_prompt(
    validation: Scored, reduction: float
) -> None:
    threshold = choose_threshold(validation, Target("cost_reduction", reduction))
    point = routing_metrics.operating_point(
        validation.scores, validation.weak, validation.strong, threshold
    )
    assert reduction <= point.cost_reduction <= reduction + 1.5 / validation.scores.size


def test_cost_reduction_with_priced_weak_calls(validation: Scored) -> None:
    target = Target("cost_reduction", 0.5, weak_cost_ratio=0.2)
    threshold = choose_threshold(validation, target)
    point = routing_metrics.operating_point(
        validation.scores, validation.weak, validation.strong, threshold, 0.2
    )
    assert 0.5 <= point.cost_reduction <= 0.5 + 1.5 / validation.scores.size


@pytest.mark.parametrize("quality", [0.9, 0.95, 0.99])
def test_quality_target_is_met_with_fewest_strong_calls(validation: Scored, quality: float) -> None:
    threshold = choose_threshold(validation, Target("quality", quality))
    point = routing_metrics.operating_point(
        validation.scores, validation.weak, validation.strong, threshold
    )
    assert point.quality_vs_strong >= quality
    # One prompt fewer to the strong model would miss the target (or gain nothing).
    assert point.quality_vs_strong <= quality + 1.5 / validation.scores.size / 0.85


def test_calibration_section_reports_validation_and_test(validation: Scored) -> None:
    section = calibration(validation, validation, Target("quality", 0.95))
    assert section["validation"] == section["test"]
    assert section["validation"]["threshold"] == section["threshold"]
    assert section["validation"]["quality"] > section["validation"]["random_quality"]


def test_threshold_table_is_monotonic_in_share(validation: Scored) -> None:
    rows = [r for r in threshold_table(validation) if r["target"]["kind"] == "cost_reduction"]
    shares = [r["strong_share"] for r in rows]
    assert shares == sorted(shares) and len(rows) == 10


@pytest.mark.parametrize(
    "target",
    [
        lambda: Target("quality", 0.0),
        lambda: Target("quality", 1.2),
        lambda: Target("cost_reduction", 0.9, weak_cost_ratio=0.5),
    ],
)
def test_invalid_targets_are_refused(target: object) -> None:
    with pytest.raises(ValueError):
        target()  # type: ignore[operator]
