"""The learned escalation score: P(the cheaper tier's answer is acceptable), from judged samples.

A logistic regression (numpy only: L2-regularised Newton / IRLS on standardised features,
weighted by the samples' ``sample_weight`` so it learns the traffic, not the sampling) maps a
sample's ``features`` — its answer's signals and any cheap prompt features passed in the same
mapping — to the probability that a judge accepts the answer. Optionally the output is
recalibrated by isotonic regression (pool-adjacent-violators), which keeps the ranking and
fixes the scale.

Models are immutable: :meth:`ScoreModel.refit` returns a new one with a higher ``version``.
Until a refit has seen ``min_samples`` samples of *each* class, the model is unfitted and
scores with the prior: the feature named ``prior_feature`` (the model service's confidence),
0 if absent, so that a missing signal escalates. Scores are kept strictly below 1 so that a
threshold of 1 escalates everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from router_svc.quality.samples import JudgedSample

Array = npt.NDArray[np.float64]
MAX_SCORE = 1.0 - 1e-9
"""Largest score returned: a threshold of 1 then escalates every request."""
_NEWTON_ITERATIONS = 50
_NEWTON_TOLERANCE = 1e-8


def _sigmoid(z: Array) -> Array:
    # exp of a negative magnitude only: no overflow for large |z|.
    e = np.exp(-np.abs(z))
    out: Array = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def _clip(x: float) -> float:
    return min(MAX_SCORE, max(0.0, x)) if math.isfinite(x) else 0.0


@dataclass(frozen=True)
class IsotonicMap:
    """A non-decreasing piecewise-linear map fitted by pool-adjacent-violators."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, x: float) -> float:
        """The calibrated value at ``x`` (constant beyond the fitted range)."""
        return float(np.interp(x, self.xs, self.ys))

    @classmethod
    def fit(cls, x: Sequence[float], y: Sequence[float], w: Sequence[float]) -> IsotonicMap:
        """The weighted least-squares non-decreasing fit of ``y`` on ``x``."""
        order = np.argsort(np.asarray(x, dtype=np.float64), kind="stable")
        xs = np.asarray(x, dtype=np.float64)[order]
        ys = np.asarray(y, dtype=np.float64)[order]
        ws = np.asarray(w, dtype=np.float64)[order]
        # Blocks as (weighted mean y, weight, weighted x sum); merge while decreasing.
        means: list[float] = []
        weights: list[float] = []
        x_sums: list[float] = []
        for xi, yi, wi in zip(xs.tolist(), ys.tolist(), ws.tolist(), strict=True):
            means.append(yi)
            weights.append(wi)
            x_sums.append(xi * wi)
            while len(means) > 1 and means[-2] >= means[-1]:
                w2 = weights[-2] + weights[-1]
                m2 = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w2
                s2 = x_sums[-2] + x_sums[-1]
                del means[-1], weights[-1], x_sums[-1]
                means[-1], weights[-1], x_sums[-1] = m2, w2, s2
        centres = [s / w for s, w in zip(x_sums, weights, strict=True)]
        return cls(tuple(centres), tuple(means))


@dataclass(frozen=True)
class ScoreModel:
    """An immutable escalation score model (unfitted: the prior score)."""

    prior_feature: str = "confidence"
    """Feature holding the prior score, used until the model is fitted."""
    min_samples: int = 30
    """Samples of each class (acceptable, unacceptable) needed before a fit replaces the prior."""
    l2: float = 1.0
    """L2 penalty on the standardised coefficients (the intercept is not penalised)."""
    isotonic: bool = False
    """Recalibrate the logistic output by isotonic regression on the training samples."""
    version: int = 0
    """0 while unfitted; every successful refit adds 1."""
    trained_on: int = 0
    """Samples the current fit learned from."""
    feature_names: tuple[str, ...] = ()
    means: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()
    coef: tuple[float, ...] = ()
    intercept: float = 0.0
    calibration: IsotonicMap | None = None

    @property
    def fitted(self) -> bool:
        """Whether scores come from a fit (else from the prior)."""
        return self.version > 0

    def _matrix(self, rows: Sequence[Mapping[str, float]]) -> Array:
        means = np.asarray(self.means, dtype=np.float64)
        raw = np.array(
            [
                [row.get(n, m) for n, m in zip(self.feature_names, self.means, strict=True)]
                for row in rows
            ],
            dtype=np.float64,
        ).reshape(len(rows), len(self.feature_names))
        # A missing feature takes the training mean: it then says nothing either way.
        standardised: Array = (raw - means) / np.asarray(self.scales, dtype=np.float64)
        return standardised

    def _logistic(self, rows: Sequence[Mapping[str, float]]) -> Array:
        z = self._matrix(rows) @ np.asarray(self.coef, dtype=np.float64) + self.intercept
        return _sigmoid(np.asarray(z, dtype=np.float64))

    def score(self, features: Mapping[str, float]) -> float:
        """P(acceptable) of an answer with these ``features``, in [0, 1)."""
        if not self.fitted:
            return _clip(float(features.get(self.prior_feature, 0.0)))
        p = float(self._logistic([features])[0])
        if self.calibration is not None:
            p = self.calibration(p)
        return _clip(p)

    def score_many(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        """:meth:`score` of many feature mappings at once (vectorised)."""
        if not self.fitted or not rows:
            return [self.score(row) for row in rows]
        p = self._logistic(rows)
        if self.calibration is not None:
            p = np.interp(p, self.calibration.xs, self.calibration.ys)
        clipped = np.clip(np.nan_to_num(p, nan=0.0), 0.0, MAX_SCORE)
        return [float(v) for v in clipped]

    def refit(self, samples: Sequence[JudgedSample]) -> ScoreModel:
        """A model fitted on ``samples``; ``self`` unchanged if a class has too few samples."""
        good = sum(1 for s in samples if s.acceptable)
        if min(good, len(samples) - good) < self.min_samples:
            return self
        names = tuple(sorted({name for s in samples for name in s.features}))
        rows = [s.features for s in samples]
        raw = np.array(
            [[row.get(n, math.nan) for n in names] for row in rows], dtype=np.float64
        ).reshape(len(rows), len(names))
        means = np.nanmean(raw, axis=0) if names else np.zeros(0)
        raw = np.where(np.isnan(raw), means, raw)
        scales = raw.std(axis=0)
        scales = np.where(scales > 1e-12, scales, 1.0)
        x = (raw - means) / scales
        y = np.array([1.0 if s.acceptable else 0.0 for s in samples])
        w = np.array([s.sample_weight for s in samples], dtype=np.float64)
        w = w / w.mean()
        try:
            beta = _newton(x, y, w, self.l2)
        except np.linalg.LinAlgError:
            # Degenerate evidence (e.g. duplicated columns at a tiny penalty): keep the model in
            # force rather than serve a broken one.
            return self
        if not np.all(np.isfinite(beta)):
            return self
        model = replace(
            self,
            version=self.version + 1,
            trained_on=len(samples),
            feature_names=names,
            means=tuple(float(v) for v in means),
            scales=tuple(float(v) for v in scales),
            coef=tuple(float(v) for v in beta[1:]),
            intercept=float(beta[0]),
            calibration=None,
        )
        if self.isotonic:
            fitted = model._logistic(rows)
            model = replace(
                model, calibration=IsotonicMap.fit(fitted.tolist(), y.tolist(), w.tolist())
            )
        return model

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict (the inverse of :meth:`from_json`)."""
        out: dict[str, Any] = {
            "prior_feature": self.prior_feature,
            "min_samples": self.min_samples,
            "l2": self.l2,
            "isotonic": self.isotonic,
            "version": self.version,
            "trained_on": self.trained_on,
            "feature_names": list(self.feature_names),
            "means": list(self.means),
            "scales": list(self.scales),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "calibration": None,
        }
        if self.calibration is not None:
            out["calibration"] = {
                "xs": list(self.calibration.xs),
                "ys": list(self.calibration.ys),
            }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoreModel:
        """Parse :meth:`to_json` output (``KeyError``/``TypeError``/``ValueError`` if bad)."""
        cal = data["calibration"]
        names = tuple(str(n) for n in data["feature_names"])
        vectors = [tuple(float(v) for v in data[k]) for k in ("means", "scales", "coef")]
        if any(len(v) != len(names) for v in vectors):
            raise ValueError("feature vectors differ in length")
        return cls(
            prior_feature=str(data["prior_feature"]),
            min_samples=int(data["min_samples"]),
            l2=float(data["l2"]),
            isotonic=bool(data["isotonic"]),
            version=int(data["version"]),
            trained_on=int(data["trained_on"]),
            feature_names=names,
            means=vectors[0],
            scales=vectors[1],
            coef=vectors[2],
            intercept=float(data["intercept"]),
            calibration=None
            if cal is None
            else IsotonicMap(
                tuple(float(v) for v in cal["xs"]), tuple(float(v) for v in cal["ys"])
            ),
        )


def _newton(x: Array, y: Array, w: Array, l2: float) -> Array:
    """Weighted, L2-penalised logistic regression coefficients (intercept first) by IRLS."""
    design = np.hstack([np.ones((x.shape[0], 1)), x])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    beta = np.zeros(design.shape[1])
    for _ in range(_NEWTON_ITERATIONS):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (w * (p - y)) + penalty * beta
        curvature = w * p * (1.0 - p)
        # A small ridge keeps the Hessian invertible when the classes separate perfectly.
        hessian = design.T @ (design * curvature[:, None]) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta = beta - step
        if float(np.max(np.abs(step))) < _NEWTON_TOLERANCE:
            break
    return beta


def out_of_fold_scores(
    model: ScoreModel, samples: Sequence[JudgedSample], folds: int = 2
) -> list[float]:
    """Each sample's score under a model fitted without it (cross-fitting, ``folds`` folds).

    The threshold controller certifies on these: scores of the very samples a model was fitted
    on look better than the model will do on new traffic. Folds interleave in time order.
    An unfitted ``model`` scores by its prior, which learned nothing from the samples.
    """
    if not model.fitted:
        return [model.score(s.features) for s in samples]
    # Each fold's model is fitted whenever both classes occur in its training part: the full
    # model already showed there is enough of each class in all the samples together.
    template = ScoreModel(
        prior_feature=model.prior_feature, min_samples=1, l2=model.l2, isotonic=model.isotonic
    )
    scores = [0.0] * len(samples)
    for fold in range(folds):
        train = [s for i, s in enumerate(samples) if i % folds != fold]
        fitted = template.refit(train)
        # A fold without both classes falls back to the prior.
        held = range(fold, len(samples), folds)
        rows = [samples[i].features for i in held]
        for i, score in zip(held, fitted.score_many(rows), strict=True):
            scores[i] = score
    return scores
