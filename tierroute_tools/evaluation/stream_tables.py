"""Markdown of a stream evaluation's report (what ``docs/evaluation.md`` quotes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierroute_tools.evaluation.tables import num, pct, table


def _thresholds(values: Mapping[str, float]) -> str:
    return ", ".join(f"{tier} {value:.3f}" for tier, value in values.items()) or "—"


def overall_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """One row per policy: the overall figures, random at the same rate, the price sweep."""
    ratio = f"1/{report['target_price_ratio']:g}"
    rows = []
    for name, policy in report["policies"].items():
        overall = policy["overall"]
        random = policy["random_at_same_rate"]
        sweep = policy["price_sweep"]
        rows.append(
            [
                name,
                pct(overall["served_quality"]),
                pct(overall["large_quality"]),
                num(overall["quality_ratio"]),
                num(overall["cost_ratio"]),
                num(sweep[ratio]["cost_ratio"]),
                pct(overall["escalation_rate"]),
                pct(overall["largest_share"]),
                str(overall["samples"]),
                _thresholds(overall["thresholds"]),
                num(random["quality_ratio"]),
                num(random["cost_ratio"]),
                num(sweep[ratio]["random_cost_ratio"]),
            ]
        )
    return rows


def window_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """One row per policy and window."""
    rows = []
    for name, policy in report["policies"].items():
        for row in policy["windows"]:
            end = row["first_item"] + row["items"]
            rows.append(
                [
                    name,
                    f"{row['first_item'] + 1}-{end}",
                    pct(row["served_quality"]),
                    pct(row["large_quality"]),
                    num(row["quality_ratio"]),
                    num(row["cost_ratio"]),
                    pct(row["escalation_rate"]),
                    _thresholds(row["thresholds"]),
                    str(row["samples"]),
                ]
            )
    return rows


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


_WASTED_COLUMNS = ("items", "wasted (controller)", "wasted (learned start)", "avoided")


def start_tier_lines(comparison: Mapping[str, Any]) -> list[str]:
    """The learned start tier against the controller alone: after warm-up, then per window."""
    return [
        f"Learned start tier vs the controller alone, after warm-up (the first "
        f"{comparison['warmup_items']} items); a wasted call is a request that started at a "
        "cheaper tier and was escalated anyway:",
        "",
        table(
            (
                *_WASTED_COLUMNS,
                "gold quality controller → learned",
                "served cost learned / controller",
                "p50 wait of the controller's wasted requests: controller → learned",
            ),
            [
                [
                    str(comparison["items"]),
                    str(comparison["wasted_base"]),
                    str(comparison["wasted_learned"]),
                    pct(comparison["avoided"]),
                    f"{pct(comparison['quality_base'])} → {pct(comparison['quality_learned'])}",
                    num(comparison["cost_learned_vs_base"]),
                    f"{_seconds(comparison['wasted_latency_p50_base_seconds'])} → "
                    f"{_seconds(comparison['wasted_latency_p50_learned_seconds'])}",
                ]
            ],
        ),
        "",
        table(
            (
                *_WASTED_COLUMNS,
                "started largest",
            ),
            [
                [
                    f"{row['first_item'] + 1}-{row['first_item'] + row['items']}",
                    str(row["wasted_base"]),
                    str(row["wasted_learned"]),
                    pct(row["avoided"]),
                    str(row["started_largest_learned"]),
                ]
                for row in comparison["windows"]
            ],
        ),
        "",
    ]


def stream_markdown(report: Mapping[str, Any], title: str = "Stream") -> str:
    """Tables: overall per policy, pinned arms, judges against gold, per window."""
    ratio = f"1/{report['target_price_ratio']:g}"
    judges = report["judges"]
    lines = [
        f"## {title}: {report['items']} items in order, windows of {report['window']}",
        "",
        "Quality is scored against gold; ratios are relative to the pinned largest tier on the "
        "same items; cost includes shadow and judge costs.",
        "",
        table(
            (
                "policy",
                "served quality",
                "all-largest quality",
                "quality ratio",
                "cost ratio",
                f"cost ratio at {ratio}",
                "escalated",
                "served by largest",
                "judged samples",
                "threshold at the end",
                "random: quality ratio",
                "random: cost ratio",
                f"random: cost ratio at {ratio}",
            ),
            overall_rows(report),
        ),
        "",
        table(
            ("pinned tier", "quality", "cost ratio", f"cost ratio at {ratio}", "errors"),
            [
                [
                    tier,
                    pct(arm["served_quality"]),
                    num(arm["cost_ratio"]),
                    num(arm[f"cost_ratio_at_{ratio}"]),
                    str(arm["errors"]),
                ]
                for tier, arm in report["pinned"].items()
            ],
        ),
        "",
        table(
            ("judge", "cases", "decided", "agreement with gold", "false accepts", "false rejects"),
            [
                [
                    name,
                    str(row["cases"]),
                    str(row["decided"]),
                    pct(row["agreement_with_gold"]),
                    str(row["false_accepts"]),
                    str(row["false_rejects"]),
                ]
                for name, row in [("all", judges), *judges.get("by_judge", {}).items()]
            ],
        )
        if judges.get("cases")
        else "No judged pairs (no item both pinned arms answered).",
        "",
        table(
            (
                "policy",
                "items",
                "served quality",
                "all-largest quality",
                "quality ratio",
                "cost ratio",
                "escalated",
                "threshold after",
                "judged samples after",
            ),
            window_rows(report),
        ),
        "",
    ]
    if "start_tier" in report:
        lines += start_tier_lines(report["start_tier"])
    return "\n".join(lines)
