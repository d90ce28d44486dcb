"""Fitting the confidence calibration and the fallback threshold on live records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from model_svc.confidence import ConfidenceParams, confidence_of
from model_svc.config import ConfidenceSettings
from router_svc.config import PolicySettings
from tierroute_tools.evaluation.fit_confidence import confidence_scores, fit, split_ids
from tierroute_tools.evaluation.live import LiveRecord


def _stats(logprobs: list[float], params: ConfidenceParams) -> dict[str, np.ndarray]:
    s = confidence_of(logprobs, params)
    return {
        "mean_logprob": np.array([s.mean_logprob]),
        "min_window_logprob": np.array([s.min_window_logprob]),
        "low_prob_fraction": np.array([s.low_prob_fraction]),
        "token_count": np.array([float(s.token_count)]),
    }


@pytest.mark.parametrize("length", [0, 1, 3, 8, 9, 40])
def test_recomputed_score_matches_the_service(length: int) -> None:
    rng = np.random.default_rng(length)
    for params in (
        ConfidenceParams(),
        ConfidenceParams(bias=-1, weight_mean=5, weight_min_window=2, prior_tokens=0),
        ConfidenceParams(prior_tokens=6, prior_logprob=-0.3, window_tokens=3),
    ):
        logprobs = list(-rng.exponential(0.7, size=length))
        expected = confidence_of(logprobs, params).score
        assert confidence_scores(_stats(logprobs, params), params)[0] == pytest.approx(
            expected, abs=1e-12
        )


def _records(n: int, seed: int = 0) -> list[LiveRecord]:
    """Small-tier answers whose correctness follows their mean log-probability."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        tokens = int(rng.integers(1, 4))
        mean = -rng.exponential(0.5)
        right = rng.random() < 1 / (1 + math.exp(-(2.0 + 6.0 * mean)))
        stats = {
            "mean_logprob": mean,
            "min_logprob": mean * 1.5,
            "min_window_logprob": mean,
            "low_prob_fraction": float(mean < -1.5),
            "token_count": float(tokens),
        }
        default = confidence_scores(
            {k: np.array([v]) for k, v in stats.items()}, ConfidenceParams()
        )[0]
        common = {"item_id": str(i), "source": "t", "gold": "1", "text": "", "answer": None}
        records.append(
            LiveRecord(
                arm="small",
                correct=bool(right),
                confidence=float(default),
                stats=stats,
                cost_usd=1e-6,
                **common,  # type: ignore[arg-type]
            )
        )
        records.append(
            LiveRecord(
                arm="large",
                correct=bool(rng.random() < 0.9),
                cost_usd=1e-5,
                **common,  # type: ignore[arg-type]
            )
        )
    return records


def test_split_is_seeded_and_balanced() -> None:
    ids = [str(i) for i in range(1000)]
    first = split_ids(ids, 0)
    assert first.tolist() == split_ids(ids, 0).tolist()
    assert first.tolist() != split_ids(ids, 1).tolist()
    assert 0.45 < first.mean() < 0.55


def test_fit_improves_ranking_and_writes_configs() -> None:
    result = fit(_records(400), target=0.9)
    report = result.report
    assert report["fit_items"] + report["report_items"] == 400
    assert report["recomputed_max_abs_diff"] < 1e-12
    after, before = report["report"]["after"], report["report"]["before"]
    # The default parameters already rank by the mean; the fit must not be worse, and its
    # scores are calibrated: close to the real share of right answers.
    assert after["auroc"] >= before["auroc"] - 0.02
    assert after["log_loss"] < before["log_loss"]
    small_accuracy = report["report"]["small_accuracy"]
    assert after["mean_score"] == pytest.approx(small_accuracy, abs=0.08)
    params = result.params
    assert min(params.weight_mean, params.weight_min_window, params.penalty_low_prob) >= 0
    chosen = report["fit_half_at_threshold"]
    assert chosen["threshold"] == result.fallback_threshold
    model = yaml.safe_load(yaml.safe_dump(result.model_config()))
    assert ConfidenceSettings(**model["confidence"]).params() == params
    router = yaml.safe_load(yaml.safe_dump(result.router_config()))
    assert PolicySettings(**router["policy"]).fallback_threshold == pytest.approx(
        result.fallback_threshold, abs=1e-6
    )


def test_fit_needs_both_outcomes() -> None:
    records = [r for r in _records(40) if not (r.arm == "small" and not r.correct)]
    with pytest.raises(ValueError):
        fit(records)
