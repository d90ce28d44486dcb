"""PNG plots of a stream evaluation: quality ratio, cost ratio and thresholds per window, and
the wasted cheaper-tier calls of each policy when the report has them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tierroute_tools.evaluation.plots import _figure, _save


def _series(report: Mapping[str, Any], key: str) -> dict[str, tuple[list[int], list[float]]]:
    series = {}
    for name, policy in report["policies"].items():
        xs, ys = [], []
        for row in policy["windows"]:
            if row.get(key) is not None:
                xs.append(row["first_item"] + row["items"])
                ys.append(float(row[key]))
        series[name] = (xs, ys)
    return series


def _line_plot(
    series: Mapping[str, tuple[list[int], list[float]]],
    path: Path,
    title: str,
    ylabel: str,
    reference: float | None,
    reference_label: str,
) -> Path:
    figure, axes = _figure()
    for name, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", markersize=3, label=name)
    if reference is not None:
        axes.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label)
    axes.set_xlabel("items of the stream (end of window)")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def stream_plots(report: Mapping[str, Any], out: Path, title: str = "Stream") -> list[Path]:
    """``stream_quality.png``, ``stream_cost.png``, ``stream_thresholds.png`` and
    ``stream_wasted.png`` (wasted cheaper-tier calls per window) in ``out``."""
    target = float(report.get("quality_target", 0.95))
    thresholds: dict[str, tuple[list[int], list[float]]] = {}
    for name, policy in report["policies"].items():
        for row in policy["windows"]:
            for tier, value in row["thresholds"].items():
                xs, ys = thresholds.setdefault(f"{name} ({tier})", ([], []))
                xs.append(row["first_item"] + row["items"])
                ys.append(float(value))
    return [
        _line_plot(
            _series(report, "quality_ratio"),
            out / "stream_quality.png",
            f"{title}: served quality / all-largest quality, per window",
            "quality ratio (gold-scored)",
            target,
            f"target {target:g}",
        ),
        _line_plot(
            _series(report, "cost_ratio"),
            out / "stream_cost.png",
            f"{title}: cost / all-largest cost, per window (shadow + judges included)",
            "cost ratio",
            1.0,
            "all-largest",
        ),
        _line_plot(
            thresholds,
            out / "stream_thresholds.png",
            f"{title}: escalation threshold in force after each window",
            "threshold",
            None,
            "",
        ),
        _line_plot(
            _series(report, "wasted_calls"),
            out / "stream_wasted.png",
            f"{title}: wasted cheaper calls per window",
            "started cheaper, then escalated",
            None,
            "",
        ),
    ]
