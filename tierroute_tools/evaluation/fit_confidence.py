"""Fit the confidence calibration and the fallback threshold on live results.

Inputs are live records of the arms pinned to each tier of the chain (:mod:`.live`; ``small``
and ``large`` for two tiers). Items are split by a seeded hash of their id (one id per
distinct prompt) into a *fit* half and a *report* half; everything is chosen on the fit half
and only measured on the report half.

1. Calibration, for every tier that may escalate (all but the last): the model service's
   confidence (``model_svc/confidence.py``) is a logistic function of statistics the router
   returns with every answer — the mean log-probability (length-corrected with
   ``prior_tokens`` pseudo-tokens of ``prior_logprob``), the lowest window mean and the share
   of low-probability tokens. Its weights are fitted by maximum likelihood (L-BFGS-B, weights
   bounded at 0 so the score stays monotonic, a small L2 penalty) to predict whether that
   tier's answer was right; the two prior parameters are chosen from a small grid by 5-fold
   cross-validated log loss on the fit half. ``window_tokens`` and ``low_prob_threshold`` stay
   as the service ran them: the statistics depend on them. A tier whose fit-half answers are
   all right or all wrong has nothing to rank: it gets a constant score (about 1 or 0, the
   limit of the logistic fit), so it never or always escalates (when no tier can be fitted,
   the fit fails).
2. Threshold (one for the whole chain, as the router has): with the fitted scores, the cascade
   is simulated on the fit half (:mod:`.chain`) at every threshold; the cheapest one whose
   accuracy reaches ``target x`` the last tier's accuracy is kept (when none does, the most
   accurate, cheapest among ties).

The result is a ``confidence:`` section per escalating tier for the model services'
configuration and a ``policy.fallback_threshold`` for the router's, plus the report-half
figures before and after, next to random escalation at the same rates.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model_svc.confidence import ConfidenceParams
from tierroute.routing_metrics import safe_auroc
from tierroute_tools.evaluation.chain import (
    Chain,
    cascade_point,
    cascade_sweep,
    cheapest_reaching,
    random_point,
)
from tierroute_tools.evaluation.live import LARGE, SMALL, LiveRecord

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


def fit_params(
    y: npt.NDArray[np.bool_], stats: dict[str, Array], base: ConfidenceParams
) -> tuple[ConfidenceParams, dict[str, Any]]:
    """Fitted calibration of one tier whose answers were right where ``y`` (priors by
    cross-validation, weights by maximum likelihood); ``stats`` are its raw statistics."""
    if y.all() or not y.any():
        raise ValueError("the fit half needs both right and wrong answers of the tier")
    folds = np.arange(len(y)) % FOLDS
    best: tuple[float, float, float] | None = None
    grid = []
    for k in PRIOR_TOKENS_GRID:
        for m0 in PRIOR_LOGPROB_GRID:
            x = _design(stats, k, m0)
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
    bias, w = _fit_logistic(_design(stats, k, m0), y)
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


CONSTANT_LOGIT = 20.0
"""Bias of a tier never (or always) right on the fit half: a score of ~2e-9 (or ~1 - 2e-9)."""


def _constant(
    base: ConfidenceParams, right: bool, why: Exception
) -> tuple[ConfidenceParams, dict[str, Any]]:
    """The calibration a one-class fit half supports: the same score for every answer.

    The logistic fit's intercept runs off to infinity there; a large finite bias with zero
    weights is its limit, so a tier that was never right always escalates (and one that was
    always right never does) at any threshold inside (0, 1).
    """
    params = replace(
        base,
        bias=CONSTANT_LOGIT if right else -CONSTANT_LOGIT,
        weight_mean=0.0,
        weight_min_window=0.0,
        penalty_low_prob=0.0,
    )
    return params, {"not_fitted": str(why), "constant": "always right" if right else "never right"}


def chain_scores(chain: Chain, params: Mapping[str, ConfidenceParams]) -> Array:
    """Per-tier scores recomputed with ``params`` (tiers without parameters keep theirs)."""
    rows = []
    for index, tier in enumerate(chain.tiers):
        if tier in params:
            stats = {name: values[index] for name, values in chain.stats.items()}
            rows.append(confidence_scores(stats, params[tier]))
        else:
            rows.append(chain.confidence[index])
    return np.vstack(rows)


def choose_threshold(chain: Chain, scores: Array, target: float) -> dict[str, Any]:
    """The cheapest threshold reaching ``target x`` last-tier accuracy (else the most accurate)."""
    goal = target * chain.accuracy[-1]
    point, reached = cheapest_reaching(cascade_sweep(chain, scores), goal)
    return {**point, "reached_target": reached}


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters, the threshold, and the before/after figures."""

    params: ConfidenceParams
    """The first tier's fitted parameters."""
    fallback_threshold: float
    report: dict[str, Any]
    params_by_tier: dict[str, ConfidenceParams]

    def model_config(self, tier: str | None = None) -> dict[str, Any]:
        """A model service's ``confidence:`` section (default: the first tier's)."""
        params = self.params if tier is None else self.params_by_tier[tier]
        return {"confidence": asdict(params)}

    def router_config(self) -> dict[str, Any]:
        """The router's ``policy.fallback_threshold``."""
        return {"policy": {"fallback_threshold": round(self.fallback_threshold, 6)}}

    def write(self, out_dir: Path) -> list[Path]:
        """``model-confidence.yaml`` (the first tier's), ``model-confidence-<tier>.yaml`` per
        escalating tier when there are several, ``router-policy.yaml`` and ``fit.json``."""
        import yaml

        out_dir.mkdir(parents=True, exist_ok=True)
        files = {out_dir / "model-confidence.yaml": yaml.safe_dump(self.model_config())}
        if len(self.params_by_tier) > 1:
            for tier in self.params_by_tier:
                files[out_dir / f"model-confidence-{tier}.yaml"] = yaml.safe_dump(
                    self.model_config(tier)
                )
        files[out_dir / "router-policy.yaml"] = yaml.safe_dump(self.router_config())
        files[out_dir / "fit.json"] = json.dumps(self.report, indent=2) + "\n"
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
        return list(files)

    def summary(self) -> list[str]:
        """One line each for the report half before and after the fit."""
        lines = []
        for name in ("before", "after"):
            side = self.report["report"][name]
            point = side["at_threshold"]
            random = side["random_at_same_rate"]
            caught = point["errors_caught"]
            lines.append(
                f"{name}: AUROC {side['auroc']}, threshold {side['fallback_threshold']:.4f}: "
                f"accuracy {point['accuracy']:.3f}, escalation {point['escalation_rate']:.3f}, "
                f"first-tier errors caught {'-' if caught is None else f'{caught:.3f}'}, "
                f"cost vs always-large {point['relative_cost']:.3f} "
                f"(random escalation at the same rate: accuracy {random['accuracy']:.3f}, "
                f"cost {random['relative_cost']:.3f})"
            )
        return lines


def _side(chain: Chain, scores: Array, threshold: float) -> dict[str, Any]:
    """Report-half figures of one set of scores (AUROC etc. of the first tier)."""
    point = cascade_point(chain, scores, threshold)
    return {
        "auroc": safe_auroc(scores[0], chain.ok[0]),
        "auroc_by_tier": {
            tier: safe_auroc(scores[k], chain.ok[k]) for k, tier in enumerate(chain.tiers[:-1])
        },
        "log_loss": _log_loss(scores[0], chain.ok[0]),
        "mean_score": float(scores[0].mean()),
        "at_threshold": point,
        "random_at_same_rate": random_point(chain, point["served_share"]),
    }


def fit(
    records: Sequence[LiveRecord],
    *,
    tiers: Sequence[str] = (SMALL, LARGE),
    base: ConfidenceParams = DEFAULT_PARAMS,
    current_threshold: float = 0.65,
    target: float = DEFAULT_TARGET,
    seed: int = DEFAULT_SEED,
) -> FitResult:
    """Fit on one half of the items, report on the other (see the module docstring).

    ``base`` is the calibration every tier's service ran with (the records' scores).
    """
    chain = Chain.from_records(records, tiers)
    fit_mask = split_ids(chain.ids, seed)
    fit_half, report_half = chain.subset(fit_mask), chain.subset(~fit_mask)
    if len(report_half.ids) == 0 or len(fit_half.ids) == 0:
        raise ValueError("too few items to split into a fit and a report half")
    escalating = chain.tiers[:-1]
    recomputed = chain_scores(chain, {tier: base for tier in escalating})
    params: dict[str, ConfidenceParams] = {}
    selection: dict[str, Any] = {}
    for index, tier in enumerate(escalating):
        stats = {name: values[index] for name, values in fit_half.stats.items()}
        try:
            params[tier], selection[tier] = fit_params(fit_half.ok[index], stats, base)
        except ValueError as exc:
            params[tier], selection[tier] = _constant(base, bool(fit_half.ok[index].any()), exc)
    if all("not_fitted" in selection[tier] for tier in escalating):
        raise ValueError(
            "no tier could be fitted: " + "; ".join(selection[t]["not_fitted"] for t in escalating)
        )
    chosen = choose_threshold(fit_half, chain_scores(fit_half, params), target)
    threshold = float(chosen["threshold"])
    report = {
        "tiers": list(chain.tiers),
        "seed": seed,
        "target_fraction_of_large_accuracy": target,
        "fit_items": len(fit_half.ids),
        "report_items": len(report_half.ids),
        # The services' own scores recomputed from the statistics: checks the formula here.
        "recomputed_max_abs_diff": float(np.max(np.abs(recomputed[:-1] - chain.confidence[:-1]))),
        "selection": selection[escalating[0]] if len(escalating) == 1 else selection,
        "fit_half_at_threshold": chosen,
        "report": {
            "small_accuracy": report_half.accuracy[0],
            "large_accuracy": report_half.accuracy[-1],
            "tier_accuracy": dict(zip(chain.tiers, report_half.accuracy, strict=True)),
            "tier_relative_cost": dict(zip(chain.tiers, report_half.relative_cost, strict=True)),
            "goal_accuracy": target * report_half.accuracy[-1],
            "before": {
                "params": asdict(base),
                "fallback_threshold": current_threshold,
                **_side(report_half, report_half.confidence, current_threshold),
            },
            "after": {
                "params": asdict(params[escalating[0]]),
                "params_by_tier": {tier: asdict(p) for tier, p in params.items()},
                "fallback_threshold": threshold,
                **_side(report_half, chain_scores(report_half, params), threshold),
            },
        },
    }
    return FitResult(
        params=params[escalating[0]],
        fallback_threshold=threshold,
        report=report,
        params_by_tier=params,
    )
