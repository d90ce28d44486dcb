"""Per cheaper tier, P(a request started there is escalated): a logistic model in numpy.

The design vector of a request is ``[1, prior, has_prior, features...]`` where ``prior`` is the
log-odds the benchmark-trained classifier gives of the cheapest tier *not* being good enough
(``logit(1 - score)``; 0 with ``has_prior`` 0 when no score is known). The untrained model is
exactly that prior for the cheapest tier (weight 1 on ``prior``, 0 elsewhere) and an even
chance for the others. Refits are MAP estimates: logistic loss on the observed outcomes plus an
L2 pull of strength ``l2`` back towards those prior weights (a light one on the intercept),
solved by Newton steps under a time cap; so a few outcomes move the model a little and many
move it far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_svc.start_tier.features import FloatArray

PRIOR_COLUMNS = 3
_LOGIT_CAP = 6.0
_INTERCEPT_PULL = 0.01


def prior_logit(score: float | None) -> tuple[float, float]:
    """``(logit(1 - score), 1)`` clipped to ±6, or ``(0, 0)`` without a score."""
    if score is None or not math.isfinite(score):
        return 0.0, 0.0
    p = min(max(1.0 - score, 1e-6), 1 - 1e-6)
    return max(-_LOGIT_CAP, min(_LOGIT_CAP, math.log(p / (1 - p)))), 1.0


def design(features: FloatArray, score: float | None) -> FloatArray:
    """The design vector (see the module docstring)."""
    logit, present = prior_logit(score)
    return np.concatenate([[1.0, logit, present], features])


def prior_weights(dim: int, tier_index: int) -> FloatArray:
    """The untrained weights of cheaper tier ``tier_index`` over ``dim`` features."""
    weights = np.zeros(PRIOR_COLUMNS + dim)
    if tier_index == 0:
        # The classifier scores the cheapest tier only; the tiers above start undecided.
        weights[1] = 1.0
    return weights


def sigmoid(z: FloatArray | float) -> FloatArray:
    """The logistic function, overflow-safe."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


@dataclass(frozen=True)
class FitResult:
    """Weights found and how the fit went."""

    weights: FloatArray
    iterations: int
    converged: bool


def fit(
    x: FloatArray,
    y: FloatArray,
    prior: FloatArray,
    l2: float,
    max_seconds: float,
    *,
    sample_weight: FloatArray | None = None,
    max_iterations: int = 25,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResult:
    """MAP logistic regression towards ``prior`` (Newton steps, stopped at ``max_seconds``);
    ``sample_weight`` scales each outcome's loss (1 each by default)."""
    weights = prior.copy()
    w = np.ones(x.shape[0]) if sample_weight is None else sample_weight
    if x.shape[0] == 0:
        return FitResult(weights, 0, True)
    deadline = clock() + max_seconds
    # The intercept (column 0) is the deployment's base rate: pulled only lightly.
    penalty = np.full(weights.shape[0], l2)
    penalty[0] = l2 * _INTERCEPT_PULL
    pull = np.diag(penalty)
    for iteration in range(1, max_iterations + 1):
        p = sigmoid(x @ weights)
        gradient = x.T @ (w * (p - y)) + penalty * (weights - prior)
        hessian = (x.T * (w * p * (1 - p))) @ x + pull
        step = np.linalg.solve(hessian, gradient)
        weights = weights - step
        if float(np.max(np.abs(step))) < 1e-6:
            return FitResult(weights, iteration, True)
        if clock() >= deadline:
            return FitResult(weights, iteration, False)
    return FitResult(weights, max_iterations, False)


class EscalationModel:
    """Weights of every cheaper tier; immutable once built (a refit builds a new one)."""

    def __init__(self, dim: int, weights: Mapping[int, FloatArray]) -> None:
        self.dim = dim
        self._weights = {i: np.asarray(w, dtype=np.float64) for i, w in weights.items()}
        for w in self._weights.values():
            if w.shape != (PRIOR_COLUMNS + dim,):
                raise ValueError(f"weights of length {w.shape} for {dim} features")

    @classmethod
    def prior(cls, dim: int, cheaper_tiers: int) -> EscalationModel:
        """The untrained model of ``cheaper_tiers`` tiers."""
        return cls(dim, {i: prior_weights(dim, i) for i in range(cheaper_tiers)})

    @property
    def tiers(self) -> Sequence[int]:
        """Indices of the cheaper tiers modelled."""
        return sorted(self._weights)

    def weights(self, tier_index: int) -> FloatArray:
        """The weights of one cheaper tier (a copy)."""
        return self._weights[tier_index].copy()

    def p_escalate(self, row: FloatArray) -> list[float]:
        """P(escalated) of a design row, per cheaper tier, cheapest first."""
        return [float(sigmoid(float(row @ self._weights[i]))) for i in self.tiers]
