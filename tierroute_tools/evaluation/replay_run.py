"""The replay workflows behind ``tierroute eval replay`` and ``tierroute eval cross-benchmark``.

Each loads outcomes, builds the requested policies (scoring prompts with the classifier when a
policy needs it), replays them, and writes ``replay.json``, ``replay.md`` and two PNGs into an
output directory (plus the ``--json`` file of per-policy metrics when asked).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, Outcome
from tierroute_tools.evaluation import plots, policies, tables
from tierroute_tools.evaluation.prices import DEFAULT_ASSUMPTION, Price, TokenAssumption
from tierroute_tools.evaluation.replay import ReplayData, replay

Log = Callable[[str], None]
CLASSIFIER_POLICIES = frozenset({policies.CLASSIFIER, policies.RULES_CLASSIFIER})


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and where to write it."""

    strong: str
    weak: str
    prices: Mapping[str, Price]
    policies: tuple[str, ...] = policies.POLICY_NAMES
    classifier_model: Path | None = None
    """ONNX file of the classifier; ``None``: the built artefact."""
    threshold: float | None = None
    """Classifier threshold; ``None``: the artefact card's calibrated one."""
    assumption: TokenAssumption = field(default=DEFAULT_ASSUMPTION)
    seed: int = 0
    progress: bool = True


def build_policies(
    data: ReplayData,
    names: Sequence[str],
    scores: npt.ArrayLike | None,
    threshold: float | None,
    seed: int = 0,
) -> list[policies.Policy]:
    """The named policies over ``data`` (``scores``/``threshold`` for the classifier ones)."""
    unknown = set(names) - set(policies.POLICY_NAMES)
    if unknown:
        raise ValueError(f"unknown policies {sorted(unknown)}; known: {policies.POLICY_NAMES}")
    if CLASSIFIER_POLICIES & set(names) and (scores is None or threshold is None):
        raise ValueError("classifier policies need scores and a threshold")
    built: list[policies.Policy] = []
    classifier_share = 0.5
    if scores is not None and threshold is not None:
        classifier_share = float(np.mean(np.asarray(scores) < threshold))
    for name in names:
        if name == policies.CLASSIFIER:
            assert scores is not None and threshold is not None
            built.append(policies.classifier_policy(scores, threshold))
        elif name == policies.RULES_CLASSIFIER:
            from router_svc.rules import RuleSet, RulesSettings

            assert scores is not None and threshold is not None
            targets = policies.rule_targets(data.prompts, RuleSet(RulesSettings()).evaluate)
            built.append(policies.rules_classifier_policy(targets, scores, threshold))
        elif name == policies.RANDOM:
            # Same strong-call share as the classifier: the baseline its point must beat.
            built.append(policies.random_policy(data.size, seed, classifier_share))
        elif name == policies.ORACLE:
            built.append(policies.oracle_policy(data.weak, data.strong))
        elif name == policies.ALWAYS_WEAK:
            built.append(policies.always_weak())
        else:
            built.append(policies.always_strong())
    return built


def write_outputs(
    report: Mapping[str, Any], out_dir: Path, title: str, json_path: Path | None = None
) -> dict[str, Path]:
    """``replay.json``, ``replay.md``, ``quality_cost.png``, ``pgr_share.png`` (+ ``json_path``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "json": out_dir / "replay.json",
        "markdown": out_dir / "replay.md",
        "quality_cost": out_dir / "quality_cost.png",
        "pgr_share": out_dir / "pgr_share.png",
    }
    written["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    written["markdown"].write_text(tables.replay_markdown(report, title), encoding="utf-8")
    plots.quality_vs_cost(report, written["quality_cost"], f"{title}: quality vs cost")
    plots.pgr_vs_share(report, written["pgr_share"], f"{title}: PGR vs strong-call share")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report["policies"], indent=2) + "\n", encoding="utf-8")
        written["policies_json"] = json_path
    return written


def replay_outcomes(
    outcomes: Sequence[Outcome], options: ReplayOptions, log: Log = _quiet
) -> dict[str, Any]:
    """Replay ``options.policies`` on ``outcomes`` with the shipped (or given) classifier."""
    data = ReplayData.from_outcomes(
        outcomes,
        strong_model=options.strong,
        weak_model=options.weak,
        prices=options.prices,
        assumption=options.assumption,
    )
    scores = threshold = None
    classifier_facts: dict[str, Any] = {}
    if CLASSIFIER_POLICIES & set(options.policies):
        from tierroute_tools.evaluation.scoring import classifier_scores

        log(f"scoring {data.size} prompts with the router's classifier")
        scored = classifier_scores(
            data.prompts, options.classifier_model, progress=options.progress
        )
        scores = scored.scores
        threshold = options.threshold if options.threshold is not None else scored.threshold
        classifier_facts = {
            "model": scored.model_path.name,
            "threshold": threshold,
            "calibration_target": scored.card.get("calibration", {}).get("target"),
            "split": scored.card.get("split", {}),
        }
    built = build_policies(data, options.policies, scores, threshold, options.seed)
    report = replay(data, built)
    report["classifier"] = classifier_facts
    return report


def cross_benchmark(
    held_out: Sequence[str],
    prices: Mapping[str, Price],
    cache_dir: Path,
    *,
    assumption: TokenAssumption = DEFAULT_ASSUMPTION,
    seed: int = 0,
    log: Log = _quiet,
) -> dict[str, dict[str, Any]]:
    """One replay report per held-out benchmark, with a head trained on the others."""
    from tierroute_tools.classifier_training.artifacts import ArtifactPaths, TrainOptions
    from tierroute_tools.evaluation.crossbench import train_without

    results = train_without(
        held_out,
        paths=ArtifactPaths.default(),
        options=TrainOptions(),
        cache_dir=cache_dir,
        log=log,
    )
    reports = {}
    for result in results:
        data = ReplayData.from_outcomes(
            result.outcomes,
            strong_model=STRONG_MODEL,
            weak_model=WEAK_MODEL,
            prices=prices,
            assumption=assumption,
        )
        built = build_policies(data, policies.POLICY_NAMES, result.scores, result.threshold, seed)
        report = replay(data, built)
        report["classifier"] = result.describe()
        reports[result.held_out] = report
    return reports
