"""Markdown tables of replay and live reports (what ``docs/evaluation.md`` quotes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def pct(value: float | None, digits: int = 1) -> str:
    """``0.1234`` → ``12.3%``; ``None`` → ``—``."""
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``None`` → ``—``."""
    return "—" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_POLICY_HEADER = (
    "policy",
    "APGR",
    "CPT(50%)",
    "CPT(80%)",
    "cost cut @95% (calls)",
    "cost cut @95% ($)",
    "threshold",
    "strong share @thr",
    "quality @thr",
    "cost cut @thr ($)",
)


def policy_rows(policies: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One row per policy with the headline metrics."""
    rows = []
    for name, m in policies.items():
        rows.append(
            [
                name,
                num(m["apgr"]),
                pct(m["cpt50"]),
                pct(m["cpt80"]),
                pct(m["cost_reduction_at_95"]),
                pct(m["cost_reduction_at_95_priced"]),
                num(m["threshold"]),
                pct(m["strong_share_at_threshold"]),
                num(m["quality_at_threshold"]),
                pct(m["cost_reduction_at_threshold"]),
            ]
        )
    return rows


def replay_markdown(report: Mapping[str, Any], title: str = "Replay") -> str:
    """The replay report: data facts, the policy table, and one table per benchmark."""
    parts = [f"### {title}", "", _facts_line(report), ""]
    parts += [table(_POLICY_HEADER, policy_rows(report["policies"])), ""]
    for note in report.get("assumptions", []):
        parts += [f"Assumed: {note}.", ""]
    for bench, section in report.get("by_benchmark", {}).items():
        parts += [f"#### {bench}", "", _facts_line(section), ""]
        parts += [table(_POLICY_HEADER, policy_rows(section["policies"])), ""]
    return "\n".join(parts).rstrip() + "\n"


def _facts_line(section: Mapping[str, Any]) -> str:
    return (
        f"{section['n']} prompts; strong ({section['strong_model']}) quality "
        f"{section['strong_quality']:.3f}, weak ({section['weak_model']}) "
        f"{section['weak_quality']:.3f}; all-strong cost ${section['all_strong_cost_usd']:.4f}, "
        f"all-weak ${section['all_weak_cost_usd']:.4f}."
    )
