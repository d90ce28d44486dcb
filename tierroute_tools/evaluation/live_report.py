"""Summaries of live records: accuracy and cost per arm and tier, escalation, AUROC, held-out fit.

The tiers form a chain, cheapest first; the pinned arm of each tier says what that tier alone
answers, and the last tier's arm is the baseline. Definitions:

- *accuracy*: share of items answered right (requests that failed count as wrong).
- *cost vs always-large*: an arm's total cost (every tier's tokens, discarded ones included)
  divided by the measured last tier's arm's total cost.
- *escalation rate*: share of an arm's requests the router escalated (for any cause; the
  causes are counted apart: a tier error also escalates, without any confidence involved).
- *first-tier errors caught*: among items the first tier answers wrong (its pinned arm) and that
  the arm first sent to the first tier, the share the cascade escalated *on confidence* (low
  confidence or early window; tier errors do not count). Greedy decoding makes the first
  tier's answer the same in both arms, so this is the cascade's recall of its errors.
  *Needless escalations* are the same share among items the first tier answers right.
- *signal AUROC*: for each tier that may escalate, how well its confidence score and each raw
  statistic rank its right answers above its wrong ones (0.5 = chance).
- *simulated cascade* (:mod:`.chain`): the cascade's accuracy and cost at
  each fallback threshold, computed from the pinned arms; checked against the measured
  ``cascade`` arm item by item, and set beside random escalation at the same rates.
- *held out* (:mod:`.fit_confidence`): the calibration and threshold fitted
  on one half of the items, measured on the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tierroute.routing_metrics import safe_auroc
from tierroute_tools.evaluation import chain as chains
from tierroute_tools.evaluation.fit_confidence import fit
from tierroute_tools.evaluation.live import CASCADE, LARGE, SMALL, LiveRecord

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


def _arm_summary(arm: Mapping[str, LiveRecord], large_cost: float | None) -> dict[str, Any]:
    records = list(arm.values())
    n = len(records)
    cost = sum(r.cost_usd for r in records)
    served = Counter(r.served_tier for r in records if r.error is None)
    causes = Counter(r.escalation_cause or "unknown" for r in records if r.escalated)
    reasons = Counter(r.reason for r in records if r.error is None)
    statuses = Counter(r.status for r in records if r.status is not None)
    isolations = Counter(r.sandbox_isolation for r in records if r.sandbox_isolation)
    summary = {
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
    if statuses:
        summary["statuses"] = dict(sorted(statuses.items()))
    if isolations:
        summary["sandbox_isolation"] = dict(sorted(isolations.items()))
    return summary


def _on_confidence(record: LiveRecord) -> bool:
    return record.escalated and record.escalation_cause in CONFIDENCE_CAUSES


def _caught(
    arm: Mapping[str, LiveRecord], first: Mapping[str, LiveRecord], first_tier: str
) -> dict[str, Any]:
    """Confidence escalations' recall of first-tier errors, among items first sent there."""
    first_sent = [
        i
        for i, r in arm.items()
        if r.error is None
        and i in first
        and first[i].error is None
        and r.routed_tier == first_tier
        and not (r.escalated and r.escalation_cause not in CONFIDENCE_CAUSES)
    ]
    wrong = [i for i in first_sent if not first[i].correct]
    right = [i for i in first_sent if first[i].correct]
    caught = [i for i in wrong if _on_confidence(arm[i])]
    fixed = [i for i in caught if arm[i].correct]
    return {
        "first_sent_to_small": len(first_sent),
        "small_errors": len(wrong),
        "small_errors_caught": len(caught) / len(wrong) if wrong else None,
        "small_errors_caught_and_fixed": len(fixed) / len(wrong) if wrong else None,
        "needless_escalations": (
            sum(_on_confidence(arm[i]) for i in right) / len(right) if right else None
        ),
    }


def signal_aurocs(chain: chains.Chain) -> dict[str, dict[str, float | None]]:
    """AUROC of the confidence score and of each raw statistic, per tier that may escalate."""
    result = {}
    for k, tier in enumerate(chain.tiers[:-1]):
        signals = {"confidence": safe_auroc(chain.confidence[k], chain.ok[k])}
        for name, sign in STAT_SIGNALS.items():
            signals[name] = safe_auroc(sign * chain.stats[name][k], chain.ok[k])
        result[tier] = signals
    return result


def _simulation(
    report: dict[str, Any],
    chain: chains.Chain,
    arms: Mapping[str, Mapping[str, LiveRecord]],
    threshold: float,
) -> None:
    point = chains.cascade_point(chain, chain.confidence, threshold)
    report["simulated_at_threshold"] = point
    report["random_at_same_rate"] = chains.random_point(chain, point["served_share"])
    measured = arms.get(CASCADE)
    if measured is not None:
        skip = frozenset(
            i
            for i, r in measured.items()
            if r.error is not None or any(e["cause"] == "tier_error" for e in r.escalations)
        )
        served = {i: r.served_tier for i, r in measured.items() if r.error is None}
        report["simulation_check"] = chains.agreement(chain, threshold, served, skip)


def summarise(
    records: Sequence[LiveRecord],
    *,
    fallback_threshold: float | None = None,
    tiers: Sequence[str] = (SMALL, LARGE),
    small_tier: str | None = None,
    seed: int = 0,
    target: float = 0.95,
) -> dict[str, Any]:
    """The live report (see the module docstring); items the first tier failed to answer for
    a tier error are left out of the caught-errors figures (no confidence was involved)."""
    tiers = tuple(tiers)
    first_tier = small_tier or tiers[0]
    arms = by_arm(records)
    large_cost = sum(r.cost_usd for r in arms.get(tiers[-1], {}).values()) or None
    report: dict[str, Any] = {
        "tiers": list(tiers),
        "arms": {name: _arm_summary(arm, large_cost) for name, arm in sorted(arms.items())},
    }
    first = arms.get(first_tier)
    if first is not None:
        for name, arm in arms.items():
            if name not in tiers:
                report["arms"][name]["cascade"] = _caught(arm, first, first_tier)
    if not all(tier in arms for tier in tiers):
        return report
    chain = chains.Chain.from_records(records, tiers)
    report["paired_items"] = len(chain.ids)
    report["tier_accuracy"] = dict(zip(tiers, chain.accuracy, strict=True))
    report["tier_relative_cost"] = dict(zip(tiers, chain.relative_cost, strict=True))
    report["small_accuracy"] = chain.accuracy[0]
    report["large_accuracy"] = chain.accuracy[-1]
    report["signal_auroc_by_tier"] = signal_aurocs(chain)
    first_signals = report["signal_auroc_by_tier"][tiers[0]]
    report["confidence_auroc"] = first_signals["confidence"]
    report["signal_auroc"] = {name: first_signals[name] for name in STAT_SIGNALS}
    report["oracle_cascade"] = chains.oracle_point(chain)
    if fallback_threshold is not None:
        _simulation(report, chain, arms, fallback_threshold)
    report["simulated_sweep"] = chains.cascade_sweep(chain)
    report["held_out"] = _held_out(records, tiers, fallback_threshold, seed, target)
    return report


def _held_out(
    records: Sequence[LiveRecord],
    tiers: tuple[str, ...],
    threshold: float | None,
    seed: int,
    target: float,
) -> dict[str, Any]:
    """The fit-confidence report (fit on one half, measured on the other), or why not."""
    try:
        result = fit(
            records,
            tiers=tiers,
            current_threshold=0.65 if threshold is None else threshold,
            seed=seed,
            target=target,
        )
    except ValueError as exc:
        return {"error": str(exc)}
    return result.report
