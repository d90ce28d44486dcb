"""The confidence function on hand-made log-probability sequences."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_svc.confidence import ConfidenceParams, ConfidenceTracker, confidence_of, logistic

PARAMS = ConfidenceParams()
logprob = st.floats(min_value=-20.0, max_value=0.0, allow_nan=False)
sequences = st.lists(logprob, min_size=0, max_size=60)


def score(values: list[float], params: ConfidenceParams = PARAMS) -> float:
    return confidence_of(values, params).score


def test_sure_answers_score_high_and_unsure_ones_low() -> None:
    sure = score([-0.01] * 20)
    fluent = score([-0.3] * 20)
    unsure = score([-2.5] * 20)
    assert sure > 0.9
    assert sure > fluent > unsure
    assert unsure < 0.05


def test_statistics_are_the_documented_ones() -> None:
    values = [-0.1, -0.2, -3.0, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1]
    stats = confidence_of(values, ConfidenceParams(window_tokens=3, low_prob_threshold=0.1))
    assert stats.token_count == 10
    assert stats.mean_logprob == pytest.approx(sum(values) / 10)
    assert stats.min_logprob == pytest.approx(-3.0)
    assert stats.min_window_logprob == pytest.approx((-0.1 - 0.2 - 3.0) / 3)
    assert stats.low_prob_fraction == pytest.approx(0.1)  # only e^-3 < 0.1


def test_a_confused_stretch_lowers_the_score_even_in_a_long_answer() -> None:
    clean = [-0.05] * 200
    stretch = clean[:100] + [-3.0] * 8 + clean[108:]
    assert score(stretch) < score(clean) - 0.1


def test_no_tokens_gives_the_prior() -> None:
    stats = confidence_of([], PARAMS)
    assert stats.token_count == 0
    z = PARAMS.bias + (PARAMS.weight_mean + PARAMS.weight_min_window) * PARAMS.prior_logprob
    assert stats.score == pytest.approx(logistic(z))


def test_short_answers_are_pulled_towards_the_prior() -> None:
    # One very sure token is not as convincing as twenty.
    assert score([-0.01]) < score([-0.01] * 20)
    # One very unsure token is not as damning as twenty.
    assert score([-4.0]) > score([-4.0] * 20)


def test_parameters_must_keep_the_score_monotonic() -> None:
    with pytest.raises(ValueError, match="monotonic"):
        ConfidenceParams(weight_mean=-1.0)
    with pytest.raises(ValueError):
        ConfidenceParams(window_tokens=0)
    with pytest.raises(ValueError):
        ConfidenceParams(low_prob_threshold=1.5)


def test_non_finite_logprobs_are_clamped() -> None:
    stats = confidence_of([-math.inf, float("nan"), 0.5], PARAMS)
    assert math.isfinite(stats.mean_logprob)
    assert stats.min_logprob == -100.0
    assert 0 <= stats.score <= 1


@given(sequences)
def test_score_is_bounded(values: list[float]) -> None:
    assert 0.0 <= score(values) <= 1.0


@given(sequences, st.integers(min_value=0, max_value=59), logprob)
def test_score_never_drops_when_a_token_becomes_more_probable(
    values: list[float], index: int, better: float
) -> None:
    if not values:
        return
    index %= len(values)
    raised = list(values)
    raised[index] = max(values[index], better)
    assert score(raised) >= score(values) - 1e-12


@given(logprob, st.integers(min_value=20, max_value=400))
def test_length_robust_for_a_constant_sequence(value: float, length: int) -> None:
    # Beyond a few windows the score of a uniform answer does not depend on its length.
    assert score([value] * length) == pytest.approx(score([value] * 400), abs=0.08)


@given(st.lists(st.lists(logprob, max_size=5), max_size=12))
def test_incremental_equals_batch(chunks: list[list[float]]) -> None:
    tracker = ConfidenceTracker(PARAMS)
    for chunk in chunks:
        tracker.add(chunk)
    flat = [value for chunk in chunks for value in chunk]
    assert asdict(tracker.stats()) == pytest.approx(asdict(confidence_of(flat, PARAMS)))
