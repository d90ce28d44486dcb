"""Fit the small tier's confidence calibration and the fallback threshold on live results.

Inputs are live records of the ``small`` and ``large`` arms (:mod:`tierroute.evaluation.live`).
Items are split by a seeded hash of their id (one id per distinct prompt) into a *fit* half and
a *report* half; everything is chosen on the fit half and only measured on the report half.

1. Calibration: the model service's confidence (``model_svc/confidence.py``) is a logistic
   function of statistics the router returns with every answer — the mean log-probability
   (length-corrected with ``prior_tokens`` pseudo-tokens of ``prior_logprob``), the lowest
   window mean and the share of low-probability tokens. Its weights are fitted by maximum
   likelihood (L-BFGS-B, weights bounded at 0 so the score stays monotonic, a small L2 penalty)
   to predict whether the small tier's answer was right; the two prior parameters are chosen
   from a small grid by 5-fold cross-validated log loss on the fit half. ``window_tokens`` and
   ``low_prob_threshold`` stay as the service ran them: the statistics depend on them.
2. Threshold: with the fitted scores, the cascade is simulated on the fit half at every
   threshold; the cheapest one whose accuracy reaches ``target x`` the large tier's accuracy is
   kept (when none does, the most accurate, cheapest among ties).

The result is a ``confidence:`` section for the model service's configuration and a
``policy.fallback_threshold`` for the router's, plus the report-half figures before and after.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model_svc.confidence import ConfidenceParams
from tierroute.evaluation.live import LiveRecord
from tierroute.evaluation.live_report import Paired, cascade_point, cascade_sweep, safe_auroc

Array = npt.NDArray[np.float64]
PRIOR_TOKENS_GRID: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
PRIOR_LOGPROB_GRID: tuple[float, ...] = (-0.25, -0.5, -1.0, -2.0)
L2_PENALTY = 1e-3
FOLDS = 5
DEFAULT_TARGET = 0.95
DEFAULT_SEED = 0
DEFAULT_PARAMS = ConfidenceParams()


def _terms(
    stats: dict[str, Array], prior_tokens: float, prior_logprob: float
) -> tuple[Array, Array, Array]:
    """The length-corrected mean, the window term and the low-probability share per answer."""
    n = stats["token_count"]
    empty = n <= 0
    # A zero-token answer is scored by the prior alone (as ConfidenceTracker does).
    total = stats["mean_logprob"] * n + prior_tokens * prior_logprob
    shrunk = np.where(empty, prior_logprob, total / np.maximum(n + prior_tokens, 1e-12))
    window = np.where(empty, prior_logprob, stats["min_window_logprob"])
    low = np.where(empty, 0.0, stats["low_prob_fraction"])
    return shrunk, window, low


def confidence_scores(stats: dict[str, Array], params: ConfidenceParams) -> Array:
    """The model service's confidence score recomputed from the returned raw statistics."""
    shrunk, window, low = _terms(stats, params.prior_tokens, params.prior_logprob)
    z = (
        params.bias
        + params.weight_mean * shrunk
        + params.weight_min_window * window
        - params.penalty_low_prob * low
    )
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def split_ids(ids: Sequence[str], seed: int = DEFAULT_SEED) -> npt.NDArray[np.bool_]:
    """True for the fit half: a seeded hash of each id, so the split depends on nothing else."""
    flags = []
    for item_id in ids:
        digest = hashlib.sha256(f"{seed}\x00{item_id}".encode()).digest()
        flags.append(int.from_bytes(digest[:8], "big") / 2.0**64 < 0.5)
    return np.array(flags, dtype=bool)


def _design(stats: dict[str, Array], prior_tokens: float, prior_logprob: float) -> Array:
    """Columns [shrunk mean, window term, -low share]: the score is logistic(bias + x @ w)."""
    shrunk, window, low = _terms(stats, prior_tokens, prior_logprob)
    return np.column_stack((shrunk, window, -low))


def _fit_logistic(x: Array, y: npt.NDArray[np.bool_]) -> tuple[float, Array]:
    """Bias and non-negative weights of a logistic regression (L-BFGS-B, small L2)."""
    # scipy ships no type stubs; it comes with scikit-learn (the "train" extra).
    from scipy.optimize import minimize

    target = y.astype(np.float64)

    def loss(theta: Array) -> tuple[float, Array]:
        z = theta[0] + x @ theta[1:]
        # log(1 + e^z) - y z, computed stably
        value = np.logaddexp(0.0, z) - target * z
        p = 1.0 / (1.0 + np.exp(-z))
        grad_z = (p - target) / len(target)
        grad = np.concatenate(([grad_z.sum()], x.T @ grad_z))
        grad[1:] += 2 * L2_PENALTY * theta[1:]
        return float(value.mean() + L2_PENALTY * np.sum(theta[1:] ** 2)), grad

    start = np.zeros(1 + x.shape[1])
    bounds = [(None, None)] + [(0.0, None)] * x.shape[1]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return float(result.x[0]), np.asarray(result.x[1:], dtype=np.float64)


def _log_loss(p: Array, y: npt.NDArray[np.bool_]) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def fit_params(paired: Paired, base: ConfidenceParams) -> tuple[ConfidenceParams, dict[str, Any]]:
    """Fitted calibration (priors by cross-validation, weights by maximum likelihood)."""
    y = paired.small_ok
    if y.all() or not y.any():
        raise ValueError("the fit half needs both right and wrong small-tier answers")
    folds = np.arange(len(y)) % FOLDS
    best: tuple[float, float, float] | None = None
    grid = []
    for k in PRIOR_TOKENS_GRID:
        for m0 in PRIOR_LOGPROB_GRID:
            x = _design(paired.stats, k, m0)
            losses = []
            for fold in range(FOLDS):
                train, test = folds != fold, folds == fold
                if not test.any() or y[train].all() or not y[train].any():
                    continue
                bias, w = _fit_logistic(x[train], y[train])
                losses.append(_log_loss(1.0 / (1.0 + np.exp(-(bias + x[test] @ w))), y[test]))
            cv = float(np.mean(losses)) if losses else math.inf
            grid.append({"prior_tokens": k, "prior_logprob": m0, "cv_log_loss": cv})
            if best is None or cv < best[0] - 1e-12:
                best = (cv, k, m0)
    assert best is not None
    _, k, m0 = best
    bias, w = _fit_logistic(_design(paired.stats, k, m0), y)
    fitted = replace(
        base,
        bias=bias,
        weight_mean=float(w[0]),
        weight_min_window=float(w[1]),
        penalty_low_prob=float(w[2]),
        prior_tokens=k,
        prior_logprob=m0,
    )
    return fitted, {"grid": grid, "cv_log_loss": best[0]}


def choose_threshold(paired: Paired, scores: Array, target: float) -> dict[str, float]:
    """The cheapest threshold reaching ``target x`` large accuracy (else the most accurate)."""
    goal = target * float(paired.large_ok.mean())
    sweep = cascade_sweep(paired, scores)
    reaching = [p for p in sweep if p["accuracy"] >= goal - 1e-12]
    if reaching:
        return min(reaching, key=lambda p: (p["relative_cost"], p["threshold"]))
    best = max(p["accuracy"] for p in sweep)
    return min(
        (p for p in sweep if p["accuracy"] >= best - 1e-12),
        key=lambda p: (p["relative_cost"], p["threshold"]),
    )


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters, the threshold, and the before/after figures."""

    params: ConfidenceParams
    fallback_threshold: float
    report: dict[str, Any]

    def model_config(self) -> dict[str, Any]:
        """The model service's ``confidence:`` section."""
        return {"confidence": asdict(self.params)}

    def router_config(self) -> dict[str, Any]:
        """The router's ``policy.fallback_threshold``."""
        return {"policy": {"fallback_threshold": round(self.fallback_threshold, 6)}}

    def write(self, out_dir: Path) -> list[Path]:
        """``model-confidence.yaml``, ``router-policy.yaml`` and ``fit.json`` in ``out_dir``."""
        import yaml

        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            out_dir / "model-confidence.yaml": yaml.safe_dump(self.model_config()),
            out_dir / "router-policy.yaml": yaml.safe_dump(self.router_config()),
            out_dir / "fit.json": json.dumps(self.report, indent=2) + "\n",
        }
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
        return list(files)

    def summary(self) -> list[str]:
        """One line each for the report half before and after the fit."""
        lines = []
        for name in ("before", "after"):
            side = self.report["report"][name]
            point = side["at_threshold"]
            lines.append(
                f"{name}: AUROC {side['auroc']}, threshold {side['fallback_threshold']:.4f}: "
                f"accuracy {point['accuracy']:.3f}, escalation {point['escalation_rate']:.3f}, "
                f"small errors caught {point['errors_caught']:.3f}, "
                f"cost vs always-large {point['relative_cost']:.3f}"
            )
        return lines


def _side(paired: Paired, scores: Array, threshold: float) -> dict[str, Any]:
    return {
        "auroc": safe_auroc(scores, paired.small_ok),
        "log_loss": _log_loss(scores, paired.small_ok),
        "mean_score": float(scores.mean()),
        "at_threshold": cascade_point(paired, scores, threshold),
    }


def fit(
    records: Sequence[LiveRecord],
    *,
    base: ConfidenceParams = DEFAULT_PARAMS,
    current_threshold: float = 0.65,
    target: float = DEFAULT_TARGET,
    seed: int = DEFAULT_SEED,
) -> FitResult:
    """Fit on one half of the items, report on the other (see the module docstring)."""
    paired = Paired.from_records(records)
    fit_mask = split_ids(paired.ids, seed)
    fit_half, report_half = paired.subset(fit_mask), paired.subset(~fit_mask)
    if len(report_half.ids) == 0 or len(fit_half.ids) == 0:
        raise ValueError("too few items to split into a fit and a report half")
    recomputed = confidence_scores(paired.stats, base)
    params, selection = fit_params(fit_half, base)
    chosen = choose_threshold(fit_half, confidence_scores(fit_half.stats, params), target)
    threshold = chosen["threshold"]
    report = {
        "seed": seed,
        "target_fraction_of_large_accuracy": target,
        "fit_items": len(fit_half.ids),
        "report_items": len(report_half.ids),
        # The service's own scores recomputed from the statistics: checks the formula here.
        "recomputed_max_abs_diff": float(np.max(np.abs(recomputed - paired.confidence))),
        "selection": selection,
        "fit_half_at_threshold": chosen,
        "report": {
            "small_accuracy": float(report_half.small_ok.mean()),
            "large_accuracy": float(report_half.large_ok.mean()),
            "before": {
                "params": asdict(base),
                "fallback_threshold": current_threshold,
                **_side(report_half, report_half.confidence, current_threshold),
            },
            "after": {
                "params": asdict(params),
                "fallback_threshold": threshold,
                **_side(report_half, confidence_scores(report_half.stats, params), threshold),
            },
        },
    }
    return FitResult(params=params, fallback_threshold=threshold, report=report)
