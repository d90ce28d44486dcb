"""PNG plots of replay and live reports (matplotlib, headless; small files for the docs).

Replay: quality against cost (relative to all-strong) with each policy's sweep, the random line
and the oracle; PGR against the strong-call share. Live: accuracy against cost of the cascade
swept over fallback thresholds, with the measured arms; the ROC curve of the small tier's
confidence for predicting its own correctness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierroute_tools.evaluation.policies import ALWAYS_STRONG, ALWAYS_WEAK, ORACLE, RANDOM

_SIZE = (6.0, 4.0)
_DPI = 90
_STYLES: Mapping[str, Mapping[str, Any]] = {
    "classifier": {"color": "tab:blue"},
    "rules+classifier": {"color": "tab:orange"},
    ORACLE: {"color": "tab:green", "linestyle": "--"},
}


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=_SIZE, dpi=_DPI)
    return figure, axes


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def quality_vs_cost(report: Mapping[str, Any], path: Path, title: str) -> Path:
    """Mean quality against cost / all-strong cost for every swept policy; random line."""
    figure, axes = _figure()
    policies = report["policies"]
    for name, metrics in policies.items():
        sweep = metrics.get("sweep", [])
        if name in (RANDOM, ALWAYS_WEAK, ALWAYS_STRONG) or len(sweep) < 2:
            continue
        x = [1.0 - p["cost_reduction"] for p in sweep]
        y = [p["quality"] for p in sweep]
        axes.plot(x, y, label=name, **_STYLES.get(name, {}))
        if metrics["threshold"] is not None and name != ORACLE:
            axes.scatter(
                [1.0 - metrics["cost_reduction_at_threshold"]],
                [metrics["quality_at_threshold"]],
                marker="o",
                zorder=3,
                **{"color": _STYLES.get(name, {}).get("color", "black")},
            )
    weak_cost = report["all_weak_cost_usd"] / report["all_strong_cost_usd"]
    axes.plot(
        [weak_cost, 1.0],
        [report["weak_quality"], report["strong_quality"]],
        color="gray",
        linestyle=":",
        label="expected random",
    )
    axes.scatter([weak_cost], [report["weak_quality"]], color="black", marker="s", label="weak")
    axes.scatter([1.0], [report["strong_quality"]], color="black", marker="^", label="strong")
    axes.axhline(
        0.95 * report["strong_quality"],
        color="red",
        linewidth=0.8,
        alpha=0.5,
        label="95% of strong quality",
    )
    axes.set_xlabel("cost / all-strong cost")
    axes.set_ylabel("mean quality")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def pgr_vs_share(report: Mapping[str, Any], path: Path, title: str) -> Path:
    """PGR against the share of strong-model calls; random is the diagonal."""
    figure, axes = _figure()
    for name, metrics in report["policies"].items():
        sweep = metrics.get("sweep", [])
        if name in (ALWAYS_WEAK, ALWAYS_STRONG) or len(sweep) < 2:
            continue
        style = dict(_STYLES.get(name, {"color": "gray", "alpha": 0.6}))
        apgr = metrics["apgr"]
        label = f"{name} (APGR {apgr:.3f})" if apgr is not None else name
        axes.plot(
            [p["strong_share"] for p in sweep], [p["pgr"] for p in sweep], label=label, **style
        )
    axes.plot(
        [0, 1], [0, 1], color="black", linewidth=0.8, linestyle=":", label="expected random (0.5)"
    )
    axes.set_xlabel("share of calls to the strong model")
    axes.set_ylabel("PGR (performance gap recovered)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def cascade_curve(
    sweep: Sequence[Mapping[str, float]],
    arms: Mapping[str, tuple[float, float]],
    path: Path,
    title: str,
    *,
    random: Sequence[tuple[float, float]] = (),
    ylabel: str = "accuracy (exact match)",
) -> Path:
    """Accuracy against cost / always-large cost of the cascade, with measured arms as points
    and, when given, random escalation at the sweep's rates as a dotted line."""
    figure, axes = _figure()
    axes.plot(
        [p["relative_cost"] for p in sweep],
        [p["accuracy"] for p in sweep],
        color="tab:blue",
        label="cascade, threshold swept (simulated)",
    )
    if random:
        ordered = sorted(random)
        axes.plot(
            [cost for cost, _ in ordered],
            [accuracy for _, accuracy in ordered],
            color="gray",
            linestyle=":",
            label="random escalation, same rates (expected)",
        )
    markers = iter(("s", "^", "o", "D", "v", "P", "X", "*"))
    for name, (cost, accuracy) in arms.items():
        axes.scatter([cost], [accuracy], marker=next(markers, "o"), zorder=3, label=name)
    axes.set_xlabel("cost / always-large cost")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def roc_curve(
    curves: Mapping[str, tuple[Sequence[float], Sequence[bool]]], path: Path, title: str
) -> Path:
    """ROC of each named score for predicting correctness (label true = correct)."""
    figure, axes = _figure()
    for name, (scores, labels) in curves.items():
        fpr, tpr = _roc(np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool))
        axes.plot(fpr, tpr, label=name, linewidth=1.2)
    axes.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle=":", label="chance")
    axes.set_xlabel("false positive rate (wrong answers kept)")
    axes.set_ylabel("true positive rate (right answers kept)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _roc(scores: np.ndarray[Any, Any], labels: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    order = np.argsort(-scores, kind="stable")
    ranked = labels[order]
    tp = np.concatenate(([0], np.cumsum(ranked)))
    fp = np.concatenate(([0], np.cumsum(~ranked)))
    return fp / max(1, int((~labels).sum())), tp / max(1, int(labels.sum()))
