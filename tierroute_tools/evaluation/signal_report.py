"""The signal study's report: how well each signal ranks a tier's right answers above its wrong.

From the rows :mod:`.signal_study` collected, per tier: the features of every greedy answer
(:func:`tierroute.answer_features.answer_features`, final span found as a router finds it, with
no knowledge of the task's kind), the model service's own confidence, and — where extra samples
exist — self-consistency. Items are split in two halves by a seeded hash of their id
(:func:`.fit_confidence.split_ids`); every AUROC is measured on the held-back (``report``) half.
Each single signal has a fixed orientation declared before any data is seen (:data:`SIGNALS`),
so a signal that ranks backwards shows below 0.5 instead of being flipped after the fact. The
learned combinations are logistic regressions (standardised features, fixed L2 strength) fitted
on the ``fit`` half only.

Outputs: ``signals.json``, ``signals.md``, ``roc-<tier>.png``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierroute.answer_features import FEATURE_NAMES, PROMPT_FEATURES, answer_features
from tierroute.answer_features import self_consistency as agreement
from tierroute.routing_metrics import safe_auroc

Array = np.ndarray[Any, Any]

SIGNALS: Mapping[str, float] = {
    "confidence": 1.0,
    "answer_mean_logprob": 1.0,
    "answer_min_logprob": 1.0,
    "answer_min_window_logprob": 1.0,
    "answer_low_prob_fraction": -1.0,
    "answer_log_tokens": -1.0,
    "span_mean_logprob": 1.0,
    "span_min_logprob": 1.0,
    "span_min_window_logprob": 1.0,
    "span_low_prob_fraction": -1.0,
    "span_first_logprob": 1.0,
    "span_margin": 1.0,
    "span_found": 1.0,
    "self_consistency": 1.0,
}
"""Single signals and their orientation (+1: higher means more likely right)."""

ANSWER_ONLY = tuple(name for name in FEATURE_NAMES if name not in PROMPT_FEATURES)
LEARNED: Mapping[str, tuple[str, ...]] = {
    "learned": FEATURE_NAMES,
    "learned_answer_only": ANSWER_ONLY,
    "learned+self_consistency": (*FEATURE_NAMES, "self_consistency"),
}
"""Learned combinations and their inputs (fixed before looking at any result)."""
L2_C = 1.0
PLOTTED = (
    "confidence",
    "answer_mean_logprob",
    "span_mean_logprob",
    "span_min_logprob",
    "self_consistency",
    "learned",
)


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of ``records.jsonl``; an item collected twice keeps its last row."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if row.get("error") is None:
                    rows[(row["id"], row["tier"], int(row["sample"]))] = row
    return list(rows.values())


def tier_table(rows: Sequence[Mapping[str, Any]], tier: str) -> dict[str, Any]:
    """Greedy answers of ``tier``: ids, kinds, labels, feature columns, sample facts."""
    greedy = sorted(
        (r for r in rows if r["tier"] == tier and int(r["sample"]) == 0), key=lambda r: r["id"]
    )
    samples: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["tier"] == tier and int(row["sample"]) > 0:
            samples.setdefault(row["id"], []).append(row)
    columns: dict[str, list[float]] = {name: [] for name in (*FEATURE_NAMES, *SIGNALS)}
    sample_tokens = 0
    for row in greedy:
        pieces = [(str(text), [float(x) for x in lps]) for text, lps in row["pieces"]]
        features = answer_features(pieces, prompt=row["prompt"])
        features["confidence"] = float(row["confidence"])
        extra = samples.get(row["id"], [])
        sample_tokens += sum(int(s["completion_tokens"]) for s in extra)
        features["self_consistency"] = (
            agreement(row["text"], [s["text"] for s in extra], None) if extra else np.nan
        )
        for name in columns:
            columns[name].append(features[name])
    return {
        "ids": [r["id"] for r in greedy],
        "kinds": [r["kind"] for r in greedy],
        "sources": [r["source"] for r in greedy],
        "correct": np.array([bool(r["correct"]) for r in greedy]),
        "tokens": int(sum(int(r["completion_tokens"]) for r in greedy)),
        "sample_tokens": sample_tokens,
        "columns": {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()},
    }


def _fit_predict(x_fit: Array, y_fit: Array, x_test: Array) -> Array:
    """Probability of right from a logistic regression fitted on the fit half."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x_fit.mean(axis=0), x_fit.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=L2_C, max_iter=2000)
    model.fit((x_fit - mean) / std, y_fit)
    return np.asarray(model.predict_proba((x_test - mean) / std)[:, 1], dtype=np.float64)


def _auroc(scores: Array, labels: Array) -> float | None:
    keep = ~np.isnan(scores)
    value = safe_auroc(scores[keep], labels[keep]) if keep.any() else None
    return None if value is None else round(value, 4)


def tier_report(table: Mapping[str, Any], seed: int) -> tuple[dict[str, Any], dict[str, Array]]:
    """AUROC of every signal on the report half (overall and per kind), and the scores."""
    from tierroute_tools.evaluation.fit_confidence import split_ids

    fit = split_ids(table["ids"], seed)
    test = ~fit
    y = table["correct"]
    kinds = np.array(table["kinds"])
    columns = table["columns"]
    scores: dict[str, Array] = {name: sign * columns[name][test] for name, sign in SIGNALS.items()}
    swapped: dict[str, float | None] = {}
    for name, inputs in LEARNED.items():
        x = np.column_stack([columns[c] for c in inputs])
        usable = ~np.isnan(x).any(axis=1)
        if not usable.all() or len(set(y[fit].tolist())) < 2 or len(set(y[test].tolist())) < 2:
            continue  # a learned score needs every input on every item and both classes
        scores[name] = _fit_predict(x[fit], y[fit], x[test])
        # The same fit with the halves' roles swapped: how much the figure owes to the split.
        swapped[name] = _auroc(_fit_predict(x[test], y[test], x[fit]), y[fit])
    y_test = y[test]
    auroc: dict[str, dict[str, float | None]] = {}
    for name, values in scores.items():
        auroc[name] = {"all": _auroc(values, y_test)}
        for kind in sorted(set(kinds.tolist())):
            mask = kinds[test] == kind
            auroc[name][kind] = _auroc(values[mask], y_test[mask])
    rng = np.random.default_rng(seed)
    interval = {name: _bootstrap(values, y_test, rng) for name, values in scores.items()}
    summary = {
        "items": int(y.size),
        "fit_items": int(fit.sum()),
        "report_items": int(test.sum()),
        "accuracy": round(float(y.mean()), 4) if y.size else None,
        "accuracy_by_source": _accuracy_by(table["sources"], y),
        "report_right": int(y_test.sum()),
        "greedy_tokens": table["tokens"],
        "sample_tokens": table["sample_tokens"],
        "auroc": auroc,
        "auroc_interval_90": interval,
        "auroc_halves_swapped": swapped,
    }
    return summary, {name: scores[name] for name in PLOTTED if name in scores}


BOOTSTRAP = 1000


def _bootstrap(
    scores: Array, labels: Array, rng: np.random.Generator
) -> tuple[float, float] | None:
    """A 90% percentile interval of the AUROC over resampled report-half items."""
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    values = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, scores.size, scores.size) if scores.size else np.array([], int)
        value = safe_auroc(scores[pick], labels[pick])
        if value is not None:
            values.append(value)
    if len(values) < BOOTSTRAP // 2:
        return None  # too few positives or negatives to say anything
    low, high = np.percentile(values, [5, 95])
    return round(float(low), 3), round(float(high), 3)


def _accuracy_by(sources: Sequence[str], y: Array) -> dict[str, float]:
    groups: dict[str, list[bool]] = {}
    for source, right in zip(sources, y.tolist(), strict=True):
        groups.setdefault(source, []).append(bool(right))
    return {s: round(sum(v) / len(v), 3) for s, v in sorted(groups.items())}


def markdown(report: Mapping[str, Any]) -> str:
    """Tables: AUROC on the held-back half per signal and tier; accuracy per tier."""
    tiers = list(report["tiers"])
    kinds = sorted({k for t in tiers for s in report["tiers"][t]["auroc"].values() for k in s})
    kinds = ["all", *(k for k in kinds if k != "all")]
    head = [h for t in tiers for h in (*(f"{t} {k}" for k in kinds), f"{t} all, 90% CI")]
    lines = [
        f"AUROC on the held-back half (split seed {report['seed']}), with a bootstrap 90% "
        "interval; n/a: one class only or signal missing.",
        "",
        "| signal | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    names = [*SIGNALS, *LEARNED]
    for name in names:
        cells = []
        for tier in tiers:
            values = report["tiers"][tier]["auroc"].get(name, {})
            cells += [_cell(values.get(kind)) for kind in kinds]
            span = report["tiers"][tier]["auroc_interval_90"].get(name)
            cells.append("n/a" if span is None else f"{span[0]:.2f}-{span[1]:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Learned scores with the halves' roles swapped (fit on the report half):", ""]
    for tier in tiers:
        swapped = report["tiers"][tier]["auroc_halves_swapped"]
        lines.append(f"- {tier}: " + ", ".join(f"{n} {_cell(v)}" for n, v in swapped.items()))
    lines += ["", "| tier | items | right | report half (right) | greedy tokens | sample tokens |"]
    lines.append("|---|---|---|---|---|---|")
    for tier in tiers:
        t = report["tiers"][tier]
        lines.append(
            f"| {tier} | {t['items']} | {t['accuracy']} | {t['report_items']} "
            f"({t['report_right']}) | {t['greedy_tokens']} | {t['sample_tokens']} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_report(records: Path, out_dir: Path, seed: int = 17) -> dict[str, Any]:
    """Write ``signals.json``, ``signals.md`` and one ROC PNG per tier; return the summary."""
    from tierroute_tools.evaluation.plots import roc_curve

    rows = load_rows(records)
    tiers = sorted({r["tier"] for r in rows}, key=lambda t: (t != "small", t))
    report: dict[str, Any] = {"seed": seed, "tiers": {}}
    for tier in tiers:
        table = tier_table(rows, tier)
        if not table["ids"]:
            continue
        summary, scores = tier_report(table, seed)
        report["tiers"][tier] = summary
        test = ~_split(table["ids"], seed)
        labels = table["correct"][test]
        curves = {
            name: (values[~np.isnan(values)].tolist(), labels[~np.isnan(values)].tolist())
            for name, values in scores.items()
            if (~np.isnan(values)).any()
        }
        roc_curve(curves, out_dir / f"roc-{tier}.png", f"{tier} tier: held-back half")
    report["auroc"] = {
        t: {n: v["all"] for n, v in s["auroc"].items()} for t, s in report["tiers"].items()
    }
    (out_dir / "signals.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "signals.md").write_text(markdown(report))
    return report


def _split(ids: Sequence[str], seed: int) -> Array:
    from tierroute_tools.evaluation.fit_confidence import split_ids

    return split_ids(ids, seed)
