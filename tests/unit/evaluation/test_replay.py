"""Replay of policies on outcome rows: policies, per-benchmark breakdown, written outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tierroute.outcomes import Outcome, TokenCounts
from tierroute_tools.evaluation import policies
from tierroute_tools.evaluation.prices import Price, TokenAssumption
from tierroute_tools.evaluation.replay import ReplayData, replay
from tierroute_tools.evaluation.replay_run import build_policies, write_outputs

PRICES = {"big": Price(10.0, 30.0), "small": Price(0.5, 1.5)}


def _outcomes(n: int = 400, seed: int = 0) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = rng.random()
        weak = float(rng.random() > hard)  # harder prompts: the weak model fails more
        strong = float(rng.random() > hard / 3)
        bench = "alpha" if i % 2 else "beta/sub"
        rows.append(
            Outcome(f"prompt {i} difficulty {hard:.3f}", {"big": strong, "small": weak}, bench)
        )
    return rows


def _data(rows: list[Outcome]) -> ReplayData:
    return ReplayData.from_outcomes(rows, strong_model="big", weak_model="small", prices=PRICES)


def test_from_outcomes_states_the_token_assumption() -> None:
    rows = [*_outcomes(4), Outcome("only one model", {"big": 1.0}, "x")]
    data = ReplayData.from_outcomes(
        rows,
        strong_model="big",
        weak_model="small",
        prices=PRICES,
        assumption=TokenAssumption(4, 10),
    )
    assert data.size == 4
    assert any("output tokens = 10" in note for note in data.assumptions)
    assert any("1 rows without scores" in note for note in data.assumptions)
    with_tokens = [
        Outcome("p", {"big": 1.0, "small": 0.0}, "x", {m: TokenCounts(10, 10) for m in PRICES})
    ]
    exact = ReplayData.from_outcomes(
        with_tokens, strong_model="big", weak_model="small", prices=PRICES
    )
    assert exact.assumptions == ()
    assert exact.strong_cost.tolist() == pytest.approx([400e-6])
    with pytest.raises(ValueError, match="no outcome scores both"):
        ReplayData.from_outcomes(rows[-1:], strong_model="big", weak_model="small", prices=PRICES)


def test_replay_every_policy_and_benchmark() -> None:
    data = _data(_outcomes())
    # A "classifier" that knows the difficulty a little: higher score = easier.
    scores = np.array([1.0 - float(p.split()[-1]) for p in data.prompts])
    built = build_policies(data, policies.POLICY_NAMES, scores, 0.5)
    report = replay(data, built)
    names = set(report["policies"])
    assert names == set(policies.POLICY_NAMES)
    oracle, classifier, random = (report["policies"][n] for n in ("oracle", "classifier", "random"))
    assert oracle["apgr"] >= classifier["apgr"] > random["apgr"]
    assert classifier["sweep"][0]["strong_share"] == 0.0
    assert classifier["sweep"][-1]["strong_share"] == 1.0
    assert len(classifier["sweep"]) <= 101
    # Random gets the classifier's strong-call share at its operating point (the baseline).
    assert random["threshold"] == pytest.approx(classifier["strong_share_at_threshold"])
    assert set(report["by_benchmark"]) == {"alpha", "beta"}
    assert sum(s["n"] for s in report["by_benchmark"].values()) == data.size
    assert "sweep" not in report["by_benchmark"]["alpha"]["policies"]["classifier"]


def test_rules_rank_outside_the_classifier() -> None:
    policy = policies.rules_classifier_policy(["largest", None, "cheapest"], [0.9, 0.4, 0.1], 0.5)
    assert policy.scores is not None
    assert policy.scores.tolist() == [policies.RULE_STRONG_SCORE, 0.4, policies.RULE_WEAK_SCORE]
    assert policy.routes_strong(3).tolist() == [True, True, False]
    with pytest.raises(ValueError):
        policies.rules_classifier_policy(["sideways"], [0.5], 0.5)


def test_build_policies_refuses_classifier_without_scores() -> None:
    data = _data(_outcomes(10))
    with pytest.raises(ValueError, match="need scores"):
        build_policies(data, ["classifier"], None, None)
    with pytest.raises(ValueError, match="unknown policies"):
        build_policies(data, ["magic"], None, None)


def test_write_outputs(tmp_path: Path) -> None:
    data = _data(_outcomes(200))
    report = replay(
        data, build_policies(data, ["random", "oracle", "always-weak", "always-strong"], None, None)
    )
    written = write_outputs(report, tmp_path / "out", "Synthetic", tmp_path / "p.json")
    assert json.loads(written["json"].read_text())["n"] == 200
    per_policy = json.loads((tmp_path / "p.json").read_text())
    for metrics in per_policy.values():
        assert {
            "apgr",
            "cpt50",
            "cpt80",
            "cost_reduction_at_95",
            "quality_at_threshold",
            "strong_share_at_threshold",
            "sweep",
        } <= set(metrics)
    markdown = written["markdown"].read_text()
    assert "| oracle |" in markdown and "Assumed: token counts missing" in markdown
    for key in ("quality_cost", "pgr_share"):
        png = written[key].read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) < 200_000
