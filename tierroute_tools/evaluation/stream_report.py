"""The report of a stream evaluation: per window and overall, per policy (pure arithmetic).

Inputs: the records of the pinned arms (one per tier, fallback disabled; the last tier's is the
all-largest baseline) and of each policy's arm over the same items in stream order; for each
policy, one snapshot of the router's ``GetQuality`` after each window (cumulative shadow and
judge costs, judged samples, the threshold in force); the tiers' prices; the offline
judge-vs-gold agreement (:mod:`.stream_judges`).

Figures of a policy over a slice of items (a window, or all of them):

- *served quality*: share of the policy's answers right against gold; *all-largest quality*:
  the same for the pinned largest arm on the same items; *quality ratio* = served / all-largest;
- *cost ratio*: (served cost from ``RouterFinished`` + the slice's shadow and judge costs, the
  differences of the cumulative ``GetQuality`` figures) / the pinned largest arm's cost;
- *escalation rate*: share of the policy's requests escalated; *largest share*: share served by
  the largest tier (escalated or routed there);
- the threshold in force and the judged samples after the slice;
- *wasted calls*: requests that started at a cheaper tier and were escalated anyway (the
  cheaper call bought nothing); *started largest*: share that started at the largest tier.

With both ``controller`` and ``learned-start``, ``start_tier`` compares them item by item: the
wasted calls the learned start tier avoided per window and after warm-up, gold quality, served
cost, and the wait of the requests the controller wasted a call on, in both runs.

*Random at the same rate* serves each item from tier ``j`` with the probability the policy
served that share, paying every tier below it (escalation, not routing), computed exactly from
the pinned arms. The *price sweep* reprices the same measured tokens: at the configured prices,
and with the cheapest tier at ``1/ratio`` of the largest tier's per-token price (the target
deployment: a 7B-class small tier at 1/7.5 of a 70B-class large tier). Shadow and judge costs
are largest-tier tokens, whose price does not change in the sweep.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from tierroute_tools.evaluation.live import LiveRecord
from tierroute_tools.evaluation.prices import Price

TARGET_PRICE_RATIO = 7.5
"""The target deployment's price ratio: a 7B-class tier at 1/7.5 of a 70B-class tier."""
QUALITY_TARGET = 0.95

Snapshot = Mapping[str, Any]
"""One ``GetQuality`` reading (see :func:`tierroute_tools.evaluation.stream.snapshot_of`)."""


START_TIER_BASE = "controller"
START_TIER_POLICY = "learned-start"
"""The policy with the learned start tier, and the same escalation policy without it."""


def windows(count: int, size: int) -> list[range]:
    """Consecutive index ranges of ``size`` items covering ``count`` (the last may be shorter)."""
    if size < 1:
        raise ValueError("window size must be >= 1")
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _mean(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def by_arm(records: Sequence[LiveRecord]) -> dict[str, dict[str, LiveRecord]]:
    """Records by arm, then by item id."""
    arms: dict[str, dict[str, LiveRecord]] = {}
    for record in records:
        arms.setdefault(record.arm, {})[record.item_id] = record
    return arms


def repriced(record: LiveRecord, prices: Mapping[str, Price] | None) -> float:
    """The record's cost: as measured (``None``), or its tiers' tokens at ``prices``."""
    if prices is None:
        return record.cost_usd
    return sum(
        prices[u["tier"]].cost(u["prompt_tokens"], u["completion_tokens"])
        for u in record.tier_usage
    )


def target_prices(
    prices: Mapping[str, Price], tiers: Sequence[str], ratio: float = TARGET_PRICE_RATIO
) -> dict[str, Price]:
    """The cheapest tier at ``1/ratio`` of the largest tier's prices; the others unchanged."""
    if ratio <= 0:
        raise ValueError("the price ratio must be > 0")
    largest = prices[tiers[-1]]
    return {
        **prices,
        tiers[0]: Price(largest.input_usd_per_mtok / ratio, largest.output_usd_per_mtok / ratio),
    }


def slice_figures(
    ids: Sequence[str],
    policy: Mapping[str, LiveRecord],
    largest: Mapping[str, LiveRecord],
    largest_tier: str,
    *,
    extra_cost_usd: float = 0.0,
    prices: Mapping[str, Price] | None = None,
) -> dict[str, Any]:
    """The figures of one policy over the items ``ids`` (see the module docstring)."""
    served = [policy[i] for i in ids]
    baseline = [largest[i] for i in ids]
    served_quality = _mean([r.correct for r in served])
    large_quality = _mean([r.correct for r in baseline])
    served_cost = sum(repriced(r, prices) for r in served)
    large_cost = sum(repriced(r, prices) for r in baseline)
    return {
        "items": len(ids),
        "served_quality": served_quality,
        "large_quality": large_quality,
        "quality_ratio": (
            _ratio(served_quality, large_quality) if served_quality is not None else None
        )
        if large_quality is not None
        else None,
        "served_cost_usd": served_cost,
        "measurement_cost_usd": extra_cost_usd,
        "large_cost_usd": large_cost,
        "cost_ratio": _ratio(served_cost + extra_cost_usd, large_cost),
        "escalation_rate": _mean([r.escalated for r in served]),
        "largest_share": _mean([r.served_tier == largest_tier for r in served]),
        "wasted_calls": sum(wasted(r, largest_tier) for r in served),
        "started_largest_share": _mean([r.routed_tier == largest_tier for r in served]),
        "errors": sum(r.error is not None for r in served),
    }


def wasted(record: LiveRecord, largest_tier: str) -> bool:
    """A *wasted call*: the request started at a cheaper tier and was escalated anyway."""
    return record.escalated and bool(record.routed_tier) and record.routed_tier != largest_tier


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def start_tier_comparison(
    ids: Sequence[str],
    base: Mapping[str, LiveRecord],
    learned: Mapping[str, LiveRecord],
    largest_tier: str,
    window: int,
) -> dict[str, Any]:
    """What the learned start tier changed against the same escalation policy without it.

    Per window: wasted calls of each. After warm-up (the first window): wasted calls avoided,
    gold quality and cost of both, and the latency (the caller's whole wait, buffered) of the
    requests the base policy wasted a call on, in both runs."""
    parts = windows(len(ids), window)
    rows = []
    for k, part in enumerate(parts):
        window_ids = [ids[i] for i in part]
        base_wasted = sum(wasted(base[i], largest_tier) for i in window_ids)
        learned_wasted = sum(wasted(learned[i], largest_tier) for i in window_ids)
        rows.append(
            {
                "window": k,
                "first_item": part.start,
                "items": len(window_ids),
                "wasted_base": base_wasted,
                "wasted_learned": learned_wasted,
                "avoided": _ratio(base_wasted - learned_wasted, base_wasted),
                "started_largest_learned": sum(
                    learned[i].routed_tier == largest_tier for i in window_ids
                ),
            }
        )
    after = [ids[i] for part in parts[1:] for i in part]
    base_wasted_ids = [i for i in after if wasted(base[i], largest_tier)]
    learned_wasted = sum(wasted(learned[i], largest_tier) for i in after)
    base_cost = sum(base[i].cost_usd for i in after)
    return {
        "warmup_items": len(parts[0]) if parts else 0,
        "items": len(after),
        "wasted_base": len(base_wasted_ids),
        "wasted_learned": learned_wasted,
        "avoided": _ratio(len(base_wasted_ids) - learned_wasted, len(base_wasted_ids)),
        "quality_base": _mean([base[i].correct for i in after]),
        "quality_learned": _mean([learned[i].correct for i in after]),
        "cost_learned_vs_base": _ratio(sum(learned[i].cost_usd for i in after), base_cost),
        "wasted_latency_p50_base_seconds": _median(
            [base[i].latency_seconds for i in base_wasted_ids]
        ),
        "wasted_latency_p50_learned_seconds": _median(
            [learned[i].latency_seconds for i in base_wasted_ids]
        ),
        "windows": rows,
    }


def measurement_costs(snapshots: Sequence[Snapshot]) -> list[float]:
    """Shadow + judge dollars spent in each window (differences of the cumulative readings)."""
    spent = []
    before = 0.0
    for snap in snapshots:
        now = float(snap.get("shadow_cost_usd", 0.0)) + float(snap.get("judge_cost_usd", 0.0))
        spent.append(max(0.0, now - before))
        before = max(before, now)
    return spent


def random_at_rate(
    ids: Sequence[str],
    arms: Mapping[str, Mapping[str, LiveRecord]],
    tiers: Sequence[str],
    shares: Sequence[float],
    prices: Mapping[str, Price] | None = None,
) -> dict[str, float | None]:
    """Expected quality and cost ratio when item ``i`` is served by tier ``j`` with probability
    ``shares[j]``, paying every tier up to ``j`` (from the pinned arms)."""
    if len(shares) != len(tiers) or abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError("shares must give one probability per tier, summing to 1")
    accuracy = [_mean([arms[t][i].correct for i in ids]) or 0.0 for t in tiers]
    totals = [sum(repriced(arms[t][i], prices) for i in ids) for t in tiers]
    cumulative = [sum(totals[: j + 1]) for j in range(len(tiers))]
    quality = sum(q * a for q, a in zip(shares, accuracy, strict=True))
    large_quality = accuracy[-1]
    return {
        "quality": quality,
        "quality_ratio": _ratio(quality, large_quality),
        "cost_ratio": _ratio(
            sum(q * c for q, c in zip(shares, cumulative, strict=True)), totals[-1]
        ),
    }


def served_shares(
    policy: Mapping[str, LiveRecord], ids: Sequence[str], tiers: Sequence[str]
) -> list[float]:
    """Share of ``ids`` each tier served (an errored request counts for the first tier)."""
    counts = [0] * len(tiers)
    for i in ids:
        tier = policy[i].served_tier
        counts[tiers.index(tier) if tier in tiers else 0] += 1
    return [c / len(ids) for c in counts] if ids else [1.0] + [0.0] * (len(tiers) - 1)


def policy_report(
    name: str,
    ids: Sequence[str],
    arms: Mapping[str, Mapping[str, LiveRecord]],
    tiers: Sequence[str],
    snapshots: Sequence[Snapshot],
    window: int,
    prices: Mapping[str, Price],
    price_ratio: float = TARGET_PRICE_RATIO,
) -> dict[str, Any]:
    """Per-window and overall figures of one policy, random at its rate and the price sweep."""
    policy, largest = arms[name], arms[tiers[-1]]
    parts = windows(len(ids), window)
    if len(snapshots) != len(parts):
        raise ValueError(f"policy {name}: {len(snapshots)} snapshots for {len(parts)} windows")
    spent = measurement_costs(snapshots)
    rows = []
    for k, (part, snap, extra) in enumerate(zip(parts, snapshots, spent, strict=True)):
        window_ids = [ids[i] for i in part]
        row = slice_figures(window_ids, policy, largest, tiers[-1], extra_cost_usd=extra)
        row.update(
            window=k,
            first_item=part.start,
            thresholds=dict(snap.get("thresholds", {})),
            samples=int(snap.get("samples", 0)),
            estimate=snap.get("estimate"),
            lower_bound=snap.get("lower_bound"),
        )
        rows.append(row)
    final = snapshots[-1] if snapshots else {}
    total_extra = sum(spent)
    overall = slice_figures(ids, policy, largest, tiers[-1], extra_cost_usd=total_extra)
    shares = served_shares(policy, ids, tiers)
    target = target_prices(prices, tiers, price_ratio)
    at_target = slice_figures(
        ids, policy, largest, tiers[-1], extra_cost_usd=total_extra, prices=target
    )
    return {
        "overall": {
            **overall,
            "samples": int(final.get("samples", 0)),
            "thresholds": dict(final.get("thresholds", {})),
            "served_share": dict(zip(tiers, shares, strict=True)),
        },
        "windows": rows,
        "random_at_same_rate": random_at_rate(ids, arms, tiers, shares),
        "price_sweep": {
            "configured": {
                "cost_ratio": overall["cost_ratio"],
                "random_cost_ratio": random_at_rate(ids, arms, tiers, shares)["cost_ratio"],
            },
            f"1/{price_ratio:g}": {
                "cost_ratio": at_target["cost_ratio"],
                "random_cost_ratio": random_at_rate(ids, arms, tiers, shares, target)["cost_ratio"],
            },
        },
    }


def stream_report(
    ids: Sequence[str],
    records: Sequence[LiveRecord],
    tiers: Sequence[str],
    policies: Sequence[str],
    snapshots: Mapping[str, Sequence[Snapshot]],
    prices: Mapping[str, Price],
    judges: Mapping[str, Any],
    *,
    window: int,
    price_ratio: float = TARGET_PRICE_RATIO,
) -> dict[str, Any]:
    """The whole report: pinned arms, every policy, the judges' agreement with gold."""
    arms = by_arm(records)
    missing = [arm for arm in (*tiers, *policies) if arm not in arms]
    if missing:
        raise ValueError(f"no records for arm(s) {', '.join(missing)}")
    for arm in (*tiers, *policies):
        absent = [i for i in ids if i not in arms[arm]]
        if absent:
            raise ValueError(f"arm {arm} lacks {len(absent)} item(s), e.g. {absent[0]}")
    largest = arms[tiers[-1]]
    target = target_prices(prices, tiers, price_ratio)
    pinned = {
        tier: {
            **slice_figures(ids, arms[tier], largest, tiers[-1]),
            f"cost_ratio_at_1/{price_ratio:g}": slice_figures(
                ids, arms[tier], largest, tiers[-1], prices=target
            )["cost_ratio"],
        }
        for tier in tiers
    }
    comparison = {}
    if START_TIER_BASE in policies and START_TIER_POLICY in policies:
        comparison["start_tier"] = start_tier_comparison(
            ids, arms[START_TIER_BASE], arms[START_TIER_POLICY], tiers[-1], window
        )
    return {
        **comparison,
        "items": len(ids),
        "window": window,
        "tiers": list(tiers),
        "prices": {t: [p.input_usd_per_mtok, p.output_usd_per_mtok] for t, p in prices.items()},
        "target_price_ratio": price_ratio,
        "quality_target": QUALITY_TARGET,
        "pinned": pinned,
        "judges": dict(judges),
        "policies": {
            name: policy_report(
                name, ids, arms, tiers, snapshots[name], window, prices, price_ratio
            )
            for name in policies
        },
    }


def summary_json(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``--json`` file: per policy, overall quality and cost ratios (relative to all-largest
    on the same items), escalation rate, judge agreement with gold, judged samples at the end."""
    agreement = report["judges"].get("agreement_with_gold")
    return {
        name: {
            "quality_ratio": policy["overall"]["quality_ratio"],
            "cost_ratio": policy["overall"]["cost_ratio"],
            "escalation_rate": policy["overall"]["escalation_rate"],
            "judge_agreement": agreement,
            "samples": policy["overall"]["samples"],
        }
        for name, policy in report["policies"].items()
    }
