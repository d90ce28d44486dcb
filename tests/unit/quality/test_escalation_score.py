"""The learned escalation score: the prior until both classes are seen, then a ranking fit."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.quality.escalation_score import MAX_SCORE, IsotonicMap, ScoreModel
from router_svc.quality.samples import JudgedSample
from tests.unit.quality.factory import sample
from tierroute.routing_metrics import auroc


def synthetic(n: int, seed: int, weight: float = 1.0) -> list[JudgedSample]:
    """One feature separates the classes; another is noise; the prior is backwards."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ok = rng.random() < 0.7
        features = {
            "final_span_mean_logprob": rng.gauss(-0.2 if ok else -1.5, 0.4),
            "answer_tokens": rng.uniform(5, 400),
            "confidence": rng.uniform(0.0, 0.5) if ok else rng.uniform(0.5, 1.0),
        }
        out.append(sample(acceptable=ok, features=features, weight=weight, request_id=str(i)))
    return out


def test_an_unfitted_model_scores_with_the_prior() -> None:
    model = ScoreModel()
    assert not model.fitted and model.version == 0
    assert model.score({"confidence": 0.42}) == pytest.approx(0.42)
    assert model.score({}) == 0.0  # no signal: escalate
    assert model.score({"confidence": 1.0}) == MAX_SCORE < 1.0


def test_a_separating_feature_gives_an_auroc_above_0_9_on_held_out_samples() -> None:
    model = ScoreModel(min_samples=20).refit(synthetic(400, seed=1))
    held_out = synthetic(400, seed=2)
    scores = [model.score(s.features) for s in held_out]
    labels = [s.acceptable for s in held_out]
    assert model.fitted and model.version == 1 and model.trained_on == 400
    assert auroc(scores, labels) > 0.9
    prior = [s.features["confidence"] for s in held_out]
    assert auroc(prior, labels) < 0.5  # the prior it replaced ranked backwards
    assert all(0.0 <= x < 1.0 for x in scores)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(60, 300))
def test_property_auroc_above_0_9_and_the_prior_while_a_class_is_missing(seed: int, n: int) -> None:
    samples = synthetic(n, seed)
    model = ScoreModel(min_samples=10)
    only_good = [s for s in samples if s.acceptable]
    unchanged = model.refit(only_good)
    assert unchanged is model and not unchanged.fitted
    assert unchanged.score(samples[0].features) == pytest.approx(samples[0].features["confidence"])
    fitted = model.refit(samples)
    held_out = synthetic(300, seed + 1)
    scores = [fitted.score(s.features) for s in held_out]
    assert auroc(scores, [s.acceptable for s in held_out]) > 0.9


def test_too_few_of_one_class_keeps_the_previous_fit() -> None:
    fitted = ScoreModel(min_samples=20).refit(synthetic(300, seed=3))
    few_bad = [s for s in synthetic(300, seed=4) if s.acceptable][:100] + [
        s for s in synthetic(300, seed=4) if not s.acceptable
    ][:5]
    assert fitted.refit(few_bad) is fitted
    again = fitted.refit(synthetic(300, seed=5))
    assert again.version == 2 and again is not fitted


def test_missing_features_at_scoring_time_take_the_training_mean() -> None:
    model = ScoreModel(min_samples=20).refit(synthetic(300, seed=6))
    partial = model.score({"answer_tokens": 100.0})
    assert 0.0 < partial < 1.0 and math.isfinite(partial)


def test_weights_and_regularisation_keep_a_separable_fit_finite() -> None:
    data = [
        sample(acceptable=i % 2 == 0, features={"x": 1.0 if i % 2 == 0 else -1.0}, weight=1 + i % 3)
        for i in range(100)
    ]
    model = ScoreModel(min_samples=10, l2=0.1).refit(data)
    assert all(math.isfinite(c) for c in model.coef)
    assert model.score({"x": 1.0}) > 0.9 > 0.1 > model.score({"x": -1.0})


def test_isotonic_calibration_is_monotone_and_keeps_the_ranking() -> None:
    train = synthetic(400, seed=7)
    plain = ScoreModel(min_samples=20).refit(train)
    calibrated = ScoreModel(min_samples=20, isotonic=True).refit(train)
    assert calibrated.calibration is not None
    ys = calibrated.calibration.ys
    assert list(ys) == sorted(ys)
    held_out = synthetic(400, seed=8)
    labels = [s.acceptable for s in held_out]
    a_plain = auroc([plain.score(s.features) for s in held_out], labels)
    a_cal = auroc([calibrated.score(s.features) for s in held_out], labels)
    assert a_cal > 0.85 and a_cal >= a_plain - 0.05  # steps tie some scores, little else


def test_pool_adjacent_violators_pools_a_violation() -> None:
    iso = IsotonicMap.fit([1, 2, 3, 4], [0.0, 1.0, 0.0, 1.0], [1, 1, 1, 1])
    assert iso.ys == (0.0, 0.5, 1.0)
    assert iso.xs == (1.0, 2.5, 4.0)
    assert iso(2.5) == 0.5 and iso(0) == 0.0 and iso(10) == 1.0


def test_json_round_trip() -> None:
    model = ScoreModel(min_samples=20, isotonic=True).refit(synthetic(300, seed=9))
    again = ScoreModel.from_json(model.to_json())
    assert again == model
    features = synthetic(1, seed=10)[0].features
    assert again.score(features) == model.score(features)
    broken = {**model.to_json(), "coef": [1.0]}
    with pytest.raises(ValueError):
        ScoreModel.from_json(broken)


@pytest.mark.parametrize("isotonic", [False, True])
def test_score_many_matches_score(isotonic: bool) -> None:
    rows = [s.features for s in synthetic(50, seed=11)]
    for model in (
        ScoreModel(),
        ScoreModel(min_samples=20, isotonic=isotonic).refit(synthetic(300, seed=12)),
    ):
        assert model.score_many(rows) == pytest.approx([model.score(r) for r in rows], abs=1e-12)
    assert ScoreModel().score_many([]) == []
