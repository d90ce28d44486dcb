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


_ARM_HEADER = (
    "arm",
    "items",
    "accuracy",
    "cost vs always-large",
    "escalation rate (causes)",
    "decided by",
    "served by",
    "first-tier errors caught",
    "needless escalations",
)
_SIGNALS = (
    ("confidence", "confidence score"),
    ("mean_logprob", "mean log-prob"),
    ("min_window_logprob", "lowest window"),
    ("min_logprob", "lowest token"),
    ("low_prob_fraction", "low-prob share (negated)"),
)


def _arm_rows(arms: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for name, arm in arms.items():
        cascade = arm.get("cascade", {})
        served = ", ".join(f"{tier} {count}" for tier, count in arm["served"].items())
        decided = ", ".join(f"{reason} {count}" for reason, count in arm["reasons"].items())
        causes = ", ".join(f"{c} {n}" for c, n in arm.get("escalations_by_cause", {}).items())
        rows.append(
            [
                name,
                str(arm["n"]),
                pct(arm["accuracy"]),
                pct(arm["cost_vs_always_large"]),
                pct(arm["escalation_rate"]) + (f" ({causes})" if causes else ""),
                decided,
                served,
                pct(cascade.get("small_errors_caught")),
                pct(cascade.get("needless_escalations")),
            ]
        )
    return rows


def _point_row(name: str, point: Mapping[str, Any], tiers: Sequence[str]) -> list[str]:
    shares = point.get("served_share") or []
    served = ", ".join(f"{t} {pct(s, 0)}" for t, s in zip(tiers, shares, strict=False))
    return [
        name,
        num(point.get("threshold")),
        pct(point["accuracy"]),
        pct(point["relative_cost"]),
        pct(point["escalation_rate"]),
        served,
        pct(point.get("errors_caught")),
    ]


_POINT_HEADER = (
    "",
    "threshold",
    "accuracy",
    "cost vs always-large",
    "escalation rate",
    "served by",
    "first-tier errors caught",
)


def _held_out_lines(held: Mapping[str, Any], tiers: Sequence[str]) -> list[str]:
    if "error" in held:
        return [f"Held-out fit: not possible ({held['error']}).", ""]
    side = held["report"]
    goal = side["goal_accuracy"]
    rows = []
    for name in ("before", "after"):
        label = "default calibration" if name == "before" else "fitted on the fit half"
        rows.append(_point_row(label, side[name]["at_threshold"], tiers))
        rows.append(_point_row("  random, same rates", side[name]["random_at_same_rate"], tiers))
    aurocs = ", ".join(
        f"{tier} {num(value)}" for tier, value in side["after"]["auroc_by_tier"].items()
    )
    chosen = held["fit_half_at_threshold"]
    return [
        f"Held-out: calibration and threshold fitted on {held['fit_items']} items, reported on "
        f"the other {held['report_items']} (split by a seeded hash of the item id, seed "
        f"{held['seed']}). Goal: {pct(held['target_fraction_of_large_accuracy'], 0)} of the "
        f"last tier's accuracy = {pct(goal)} on the report half "
        f"(fit half: {'reached' if chosen.get('reached_target') else 'not reached'} at "
        f"threshold {num(chosen['threshold'], 4)}).",
        "",
        table(_POINT_HEADER, rows),
        "",
        "Report half: tier accuracy "
        + ", ".join(f"{t} {pct(a)}" for t, a in side["tier_accuracy"].items())
        + f"; fitted-score AUROC {aurocs}.",
        "",
    ]


def live_markdown(report: Mapping[str, Any]) -> str:
    """Tables of the live summary: arms, tiers and signals, simulation, held-out fit."""
    tiers = report.get("tiers", ["small", "large"])
    lines = [table(_ARM_HEADER, _arm_rows(report["arms"])), ""]
    if "confidence_auroc" not in report:
        return "\n".join(lines)
    by_tier = report["signal_auroc_by_tier"]
    header = ("tier", "accuracy", "cost vs always-large", *(label for _, label in _SIGNALS))
    rows = []
    for tier in tiers:
        signals = by_tier.get(tier, {})
        rows.append(
            [
                tier,
                pct(report["tier_accuracy"][tier]),
                pct(report["tier_relative_cost"][tier]),
                *(num(signals.get(key)) for key, _ in _SIGNALS),
            ]
        )
    oracle = report["oracle_cascade"]
    lines += [
        f"Tiers alone ({report['paired_items']} items answered by every tier), and the AUROC "
        "of each confidence signal for the tier's own correctness:",
        "",
        table(header, rows),
        "",
        f"Oracle cascade (the cheapest right tier serves): accuracy {pct(oracle['accuracy'])} "
        f"at {pct(oracle['relative_cost'])} of the always-large cost.",
        "",
    ]
    if "simulated_at_threshold" in report:
        simulated = report["simulated_at_threshold"]
        point_rows = [
            _point_row("simulated cascade", simulated, tiers),
            _point_row("random, same rates", report["random_at_same_rate"], tiers),
        ]
        lines += [table(_POINT_HEADER, point_rows), ""]
        check = report.get("simulation_check")
        if check is not None and check["compared"]:
            lines += [
                f"Simulation check: the cascade simulated from the pinned arms served "
                f"{check['agreeing']} of {check['compared']} items from the same tier as the "
                f"measured `cascade` arm ({pct(check['agreement'])}).",
                "",
            ]
    if "held_out" in report:
        lines += _held_out_lines(report["held_out"], tiers)
    return "\n".join(lines)
