"""Replay routing policies on per-prompt outcomes of a strong and a weak model.

For each policy (see :mod:`.policies`) the replay reports RouteLLM's metrics
on the exact routing curve (``tierroute.routing_metrics``): APGR, CPT(50%), CPT(80%), and the
cost reduction at 95% of the strong model's quality — counted RouteLLM's way (the share of calls
kept off the strong model, a weak call costing nothing) and in dollars (every call priced, see
:mod:`.prices`). It also reports what the policy's operating threshold does
(strong-call share, quality, PGR, cost) and a down-sampled sweep of the curve for plots.

A fixed policy (always-weak, always-strong) is one point: it has no APGR; its CPT(x) is its
strong-call share when its PGR reaches x, else ``None``; likewise its cost reduction at 95%.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute import routing_metrics as rm
from tierroute.outcomes import Outcome
from tierroute_tools.evaluation.policies import Policy
from tierroute_tools.evaluation.prices import DEFAULT_ASSUMPTION, Price, TokenAssumption, call_costs

Array = npt.NDArray[np.float64]
QUALITY_TARGET = 0.95
SWEEP_POINTS = 101
LABEL_MARGIN = 0.1
"""AUROC label: the weak answer scores at least the strong one's minus this (as in training)."""


@dataclass(frozen=True)
class ReplayData:
    """Per-prompt qualities and call costs of the two models."""

    prompts: tuple[str, ...]
    sources: tuple[str, ...]
    weak: Array
    strong: Array
    weak_cost: Array
    strong_cost: Array
    weak_model: str
    strong_model: str
    prices: Mapping[str, Price]
    assumptions: tuple[str, ...] = ()

    @classmethod
    def from_outcomes(
        cls,
        outcomes: Sequence[Outcome],
        *,
        strong_model: str,
        weak_model: str,
        prices: Mapping[str, Price],
        assumption: TokenAssumption = DEFAULT_ASSUMPTION,
    ) -> ReplayData:
        """Rows scored for both models; raises ``ValueError`` when none are."""
        rows = [o for o in outcomes if strong_model in o.scores and weak_model in o.scores]
        if not rows:
            raise ValueError(f"no outcome scores both {strong_model!r} and {weak_model!r}")
        weak_cost, weak_assumed = call_costs(rows, weak_model, prices[weak_model], assumption)
        strong_cost, strong_assumed = call_costs(
            rows, strong_model, prices[strong_model], assumption
        )
        notes = []
        if weak_assumed or strong_assumed:
            notes.append(
                f"{assumption.describe()} ({max(weak_assumed, strong_assumed)} of {len(rows)} rows)"
            )
        skipped = len(outcomes) - len(rows)
        if skipped:
            notes.append(f"{skipped} rows without scores of both models skipped")
        return cls(
            prompts=tuple(o.prompt for o in rows),
            sources=tuple(o.source for o in rows),
            weak=np.array([o.scores[weak_model] for o in rows], dtype=np.float64),
            strong=np.array([o.scores[strong_model] for o in rows], dtype=np.float64),
            weak_cost=weak_cost,
            strong_cost=strong_cost,
            weak_model=weak_model,
            strong_model=strong_model,
            prices=dict(prices),
            assumptions=tuple(notes),
        )

    @property
    def size(self) -> int:
        """Number of prompts."""
        return len(self.prompts)

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """The benchmark (source before the first slash) of each prompt."""
        return tuple(source.split("/", 1)[0] for source in self.sources)

    def subset(self, keep: npt.NDArray[np.bool_]) -> ReplayData:
        """The prompts where ``keep`` is true."""
        index = np.flatnonzero(keep)
        return replace(
            self,
            prompts=tuple(self.prompts[i] for i in index),
            sources=tuple(self.sources[i] for i in index),
            weak=self.weak[index],
            strong=self.strong[index],
            weak_cost=self.weak_cost[index],
            strong_cost=self.strong_cost[index],
        )


def _curve_costs(scores: Array, data: ReplayData) -> Array:
    """Total dollars at each point of the routing curve of ``scores`` (same blocks of ties)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ends = np.concatenate(([0], np.flatnonzero(np.diff(sorted_scores)) + 1, [scores.size]))
    extra = np.concatenate(([0.0], np.cumsum((data.strong_cost - data.weak_cost)[order])))
    return np.asarray(float(data.weak_cost.sum()) + extra[ends], dtype=np.float64)


def _sweep(curve: rm.RoutingCurve, costs: Array, all_strong: float, points: int) -> list[Any]:
    """About ``points`` curve points evenly spread over the strong-call share."""
    targets = np.linspace(0.0, 1.0, points)
    picked = np.unique(np.searchsorted(curve.strong_share, targets - 1e-12).clip(0, costs.size - 1))
    pgr = curve.pgr
    return [
        {
            "threshold": float(curve.thresholds[i]),
            "strong_share": float(curve.strong_share[i]),
            "quality": float(curve.quality[i]),
            "pgr": float(pgr[i]),
            "cost_usd": float(costs[i]),
            "cost_reduction": 1.0 - float(costs[i]) / all_strong if all_strong else 0.0,
        }
        for i in picked
    ]


def _auroc(scores: Array, data: ReplayData) -> float | None:
    labels = data.weak >= data.strong - LABEL_MARGIN
    if labels.all() or not labels.any():
        return None
    return rm.auroc(scores, labels)


def evaluate_policy(
    data: ReplayData, policy: Policy, *, sweep_points: int = SWEEP_POINTS, sweep: bool = True
) -> dict[str, Any]:
    """Metrics of one policy on ``data`` (see the module docstring)."""
    weak_q, strong_q = float(data.weak.mean()), float(data.strong.mean())
    all_strong = float(data.strong_cost.sum())
    to_strong = policy.routes_strong(data.size)
    share = float(to_strong.mean())
    quality = float(np.where(to_strong, data.strong, data.weak).mean())
    cost = float(np.where(to_strong, data.strong_cost, data.weak_cost).sum())
    point_pgr = float(rm.pgr(quality, weak_q, strong_q))
    result: dict[str, Any] = {
        "threshold": policy.threshold,
        "strong_share_at_threshold": share,
        "quality_at_threshold": quality,
        "quality_vs_strong_at_threshold": quality / strong_q if strong_q else None,
        "pgr_at_threshold": point_pgr,
        "random_quality_at_threshold": weak_q + share * (strong_q - weak_q),
        "cost_usd_at_threshold": cost,
        "cost_reduction_at_threshold": 1.0 - cost / all_strong if all_strong else 0.0,
    }
    if policy.scores is None:
        reaches_95 = quality >= QUALITY_TARGET * strong_q - 1e-12
        result |= {
            "apgr": None,
            "cpt50": share if point_pgr >= 0.5 - 1e-12 else None,
            "cpt80": share if point_pgr >= 0.8 - 1e-12 else None,
            "cost_reduction_at_95": rm.cost_reduction(share) if reaches_95 else None,
            "cost_reduction_at_95_priced": result["cost_reduction_at_threshold"]
            if reaches_95
            else None,
            "auroc": None,
        }
        if sweep:
            result["sweep"] = [
                {
                    "threshold": None,
                    "strong_share": share,
                    "quality": quality,
                    "pgr": point_pgr,
                    "cost_usd": cost,
                    "cost_reduction": result["cost_reduction_at_threshold"],
                }
            ]
        return result
    scores = policy.scores
    curve = rm.routing_curve(scores, data.weak, data.strong)
    costs = _curve_costs(scores, data)
    share_95 = rm.share_for_quality(curve, QUALITY_TARGET * curve.strong_quality)
    cost_95 = float(np.interp(share_95, curve.strong_share, costs))
    result |= {
        "apgr": rm.apgr(curve),
        "cpt50": rm.cpt(curve, 0.5),
        "cpt80": rm.cpt(curve, 0.8),
        "cost_reduction_at_95": rm.cost_reduction(share_95),
        "cost_reduction_at_95_priced": 1.0 - cost_95 / all_strong if all_strong else 0.0,
        "auroc": _auroc(scores, data),
    }
    if sweep:
        result["sweep"] = _sweep(curve, costs, all_strong, sweep_points)
    return result


def _policy_subset(policy: Policy, keep: npt.NDArray[np.bool_]) -> Policy:
    if policy.scores is None:
        return policy
    return replace(policy, scores=policy.scores[keep])


def replay(
    data: ReplayData,
    policies: Sequence[Policy],
    *,
    sweep_points: int = SWEEP_POINTS,
    by_benchmark: bool = True,
) -> dict[str, Any]:
    """The whole report: data facts, every policy's metrics, and a per-benchmark breakdown."""
    report: dict[str, Any] = _facts(data)
    report["policies"] = {
        p.name: evaluate_policy(data, p, sweep_points=sweep_points) for p in policies
    }
    names = np.array(data.benchmarks)
    if by_benchmark and len(set(names)) > 1:
        report["by_benchmark"] = {}
        for bench in sorted(set(names)):
            keep = names == bench
            subset = data.subset(keep)
            section = _facts(subset)
            section["policies"] = {
                p.name: evaluate_policy(subset, _policy_subset(p, keep), sweep=False)
                for p in policies
            }
            report["by_benchmark"][str(bench)] = section
    return report


def _facts(data: ReplayData) -> dict[str, Any]:
    return {
        "n": data.size,
        "strong_model": data.strong_model,
        "weak_model": data.weak_model,
        "strong_quality": float(data.strong.mean()),
        "weak_quality": float(data.weak.mean()),
        "all_strong_cost_usd": float(data.strong_cost.sum()),
        "all_weak_cost_usd": float(data.weak_cost.sum()),
        "prices": {
            model: {
                "input_usd_per_mtok": price.input_usd_per_mtok,
                "output_usd_per_mtok": price.output_usd_per_mtok,
            }
            for model, price in data.prices.items()
        },
        "assumptions": list(data.assumptions),
    }
