"""Summaries of live records: accuracy and cost per arm, escalation, errors caught, AUROC.

Definitions (the small arm and the large arm are the references):

- *accuracy*: share of items answered right (requests that failed count as wrong).
- *cost vs always-large*: an arm's total cost (every tier's tokens, discarded ones included)
  divided by the measured always-large arm's total cost.
- *escalation rate*: share of an arm's requests the router escalated (for any cause; the
  causes are counted apart: a tier error also escalates, without any confidence involved).
- *small-tier errors caught*: among items the small tier answers wrong (small arm) and that the
  arm first sent to the small tier, the share the cascade escalated *on confidence* (low
  confidence or early window; tier errors do not count). Greedy decoding makes the
  small tier's answer the same in both arms, so this is the cascade's recall of small errors.
  *Needless escalations* are the same share among items the small tier answers right.
- *confidence AUROC*: how well the small tier's confidence (small arm) ranks its right answers
  above its wrong ones (0.5 = no better than chance); also for each raw statistic.
- *simulated cascade*: from the small and large arms, the accuracy and cost the cascade would
  have at each fallback threshold (escalate when confidence < threshold; the small tier's
  tokens are still paid), for the curve plot and for fitting the threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute import routing_metrics
from tierroute.evaluation.live import LARGE, SMALL, LiveRecord

Array = npt.NDArray[np.float64]
CONFIDENCE_CAUSES = frozenset({"low_confidence", "early_window"})
"""Escalation causes that come from the confidence (not from a failing tier)."""
STAT_SIGNALS: Mapping[str, int] = {
    # raw statistic -> sign that makes "higher = more confident"
    "mean_logprob": 1,
    "min_logprob": 1,
    "min_window_logprob": 1,
    "low_prob_fraction": -1,
}


def by_arm(records: Sequence[LiveRecord]) -> dict[str, dict[str, LiveRecord]]:
    """Records grouped by arm, then by item id."""
    grouped: dict[str, dict[str, LiveRecord]] = {}
    for record in records:
        grouped.setdefault(record.arm, {})[record.item_id] = record
    return grouped


def safe_auroc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """AUROC, or ``None`` when the labels are all one class (nothing to separate)."""
    y = np.asarray(labels, dtype=bool)
    if y.size == 0 or y.all() or not y.any():
        return None
    return routing_metrics.auroc(np.asarray(scores, dtype=np.float64), y)


@dataclass(frozen=True)
class Paired:
    """Small and large answers of the same items, aligned (items answered by both arms)."""

    ids: tuple[str, ...]
    small_ok: npt.NDArray[np.bool_]
    large_ok: npt.NDArray[np.bool_]
    confidence: Array
    small_cost: Array
    large_cost: Array
    stats: dict[str, Array]

    @classmethod
    def from_records(cls, records: Sequence[LiveRecord]) -> Paired:
        """Pair the small and large arms; raises ``ValueError`` when one is missing."""
        arms = by_arm(records)
        if SMALL not in arms or LARGE not in arms:
            raise ValueError("the records need both the 'small' and the 'large' arm")
        small, large = arms[SMALL], arms[LARGE]
        ids = tuple(
            i for i in small if i in large and small[i].error is None and large[i].error is None
        )
        if not ids:
            raise ValueError("no item was answered by both the small and the large arm")
        return cls(
            ids=ids,
            small_ok=np.array([small[i].correct for i in ids], dtype=bool),
            large_ok=np.array([large[i].correct for i in ids], dtype=bool),
            confidence=np.array([small[i].confidence or 0.0 for i in ids], dtype=np.float64),
            small_cost=np.array([small[i].cost_usd for i in ids], dtype=np.float64),
            large_cost=np.array([large[i].cost_usd for i in ids], dtype=np.float64),
            stats={
                name: np.array([small[i].stats.get(name, 0.0) for i in ids], dtype=np.float64)
                for name in (*STAT_SIGNALS, "token_count")
            },
        )

    def subset(self, keep: npt.NDArray[np.bool_]) -> Paired:
        """The items where ``keep`` is true."""
        return Paired(
            ids=tuple(i for i, k in zip(self.ids, keep, strict=True) if k),
            small_ok=self.small_ok[keep],
            large_ok=self.large_ok[keep],
            confidence=self.confidence[keep],
            small_cost=self.small_cost[keep],
            large_cost=self.large_cost[keep],
            stats={name: values[keep] for name, values in self.stats.items()},
        )


def cascade_point(paired: Paired, scores: Array, threshold: float) -> dict[str, float]:
    """What the cascade does at ``threshold`` with per-item small-tier ``scores``."""
    escalate = scores < threshold
    accuracy = float(np.where(escalate, paired.large_ok, paired.small_ok).mean())
    cost = float(paired.small_cost.sum() + paired.large_cost[escalate].sum())
    large_total = float(paired.large_cost.sum())
    wrong = ~paired.small_ok
    return {
        "threshold": float(threshold),
        "accuracy": accuracy,
        "escalation_rate": float(escalate.mean()),
        "relative_cost": cost / large_total if large_total else 0.0,
        "errors_caught": float(escalate[wrong].mean()) if wrong.any() else 0.0,
        "needless_escalations": float(escalate[~wrong].mean()) if (~wrong).any() else 0.0,
    }


def cascade_sweep(paired: Paired, scores: Array | None = None) -> list[dict[str, float]]:
    """:func:`cascade_point` at every distinct score (plus never / always escalating)."""
    values = paired.confidence if scores is None else scores
    thresholds = np.unique(np.concatenate(([0.0], values, [np.nextafter(values.max(), 2.0)])))
    return [cascade_point(paired, values, float(t)) for t in thresholds]


def _arm_summary(arm: Mapping[str, LiveRecord], large_cost: float | None) -> dict[str, Any]:
    records = list(arm.values())
    n = len(records)
    cost = sum(r.cost_usd for r in records)
    served = Counter(r.served_tier for r in records if r.error is None)
    causes = Counter(r.escalation_cause or "unknown" for r in records if r.escalated)
    reasons = Counter(r.reason for r in records if r.error is None)
    return {
        "n": n,
        "errors": sum(r.error is not None for r in records),
        "accuracy": sum(r.correct for r in records) / n if n else 0.0,
        "cost_usd": cost,
        "router_baseline_cost_usd": sum(r.baseline_cost_usd for r in records),
        "cost_vs_always_large": cost / large_cost if large_cost else None,
        "escalation_rate": sum(r.escalated for r in records) / n if n else 0.0,
        "escalations_by_cause": dict(sorted(causes.items())),
        "served": dict(sorted(served.items())),
        "reasons": dict(sorted(reasons.items())),
        "mean_latency_seconds": sum(r.latency_seconds for r in records) / n if n else 0.0,
        "completion_tokens": sum(r.completion_tokens for r in records),
    }


def _on_confidence(record: LiveRecord) -> bool:
    return record.escalated and record.escalation_cause in CONFIDENCE_CAUSES


def _caught(
    arm: Mapping[str, LiveRecord], small: Mapping[str, LiveRecord], small_tier: str
) -> dict[str, Any]:
    """Confidence escalations' recall of small-tier errors, among items first sent to small."""
    first_small = [
        i
        for i, r in arm.items()
        if r.error is None
        and i in small
        and small[i].error is None
        and r.routed_tier == small_tier
        and not (r.escalated and r.escalation_cause not in CONFIDENCE_CAUSES)
    ]
    wrong = [i for i in first_small if not small[i].correct]
    right = [i for i in first_small if small[i].correct]
    caught = [i for i in wrong if _on_confidence(arm[i])]
    fixed = [i for i in caught if arm[i].correct]
    return {
        "first_sent_to_small": len(first_small),
        "small_errors": len(wrong),
        "small_errors_caught": len(caught) / len(wrong) if wrong else None,
        "small_errors_caught_and_fixed": len(fixed) / len(wrong) if wrong else None,
        "needless_escalations": (
            sum(_on_confidence(arm[i]) for i in right) / len(right) if right else None
        ),
    }


def summarise(
    records: Sequence[LiveRecord],
    *,
    fallback_threshold: float | None = None,
    small_tier: str = SMALL,
) -> dict[str, Any]:
    """The live report (see the module docstring); items the small tier failed to answer for
    a tier error are left out of the caught-errors figures (no confidence was involved)."""
    arms = by_arm(records)
    large_cost = sum(r.cost_usd for r in arms.get(LARGE, {}).values()) or None
    report: dict[str, Any] = {
        "arms": {name: _arm_summary(arm, large_cost) for name, arm in sorted(arms.items())}
    }
    small = arms.get(SMALL)
    if small is not None:
        for name, arm in arms.items():
            if name not in (SMALL, LARGE):
                report["arms"][name]["cascade"] = _caught(arm, small, small_tier)
    if small is not None and LARGE in arms:
        paired = Paired.from_records(records)
        report["paired_items"] = len(paired.ids)
        report["small_accuracy"] = float(paired.small_ok.mean())
        report["large_accuracy"] = float(paired.large_ok.mean())
        report["confidence_auroc"] = safe_auroc(paired.confidence, paired.small_ok)
        report["signal_auroc"] = {
            name: safe_auroc(sign * paired.stats[name], paired.small_ok)
            for name, sign in STAT_SIGNALS.items()
        }
        report["oracle_cascade"] = {
            # Escalate exactly the small tier's errors: the best any confidence could do.
            "accuracy": float((paired.small_ok | paired.large_ok).mean()),
            "relative_cost": float(
                (paired.small_cost.sum() + paired.large_cost[~paired.small_ok].sum())
                / paired.large_cost.sum()
            ),
        }
        if fallback_threshold is not None:
            report["simulated_at_threshold"] = cascade_point(
                paired, paired.confidence, fallback_threshold
            )
        report["simulated_sweep"] = cascade_sweep(paired)
    return report
