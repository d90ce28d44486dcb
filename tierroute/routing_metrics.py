"""Routing metrics of RouteLLM (Ong et al., 2024): PGR, APGR, CPT, cost reduction, AUROC.

A router sends each prompt to the weak (cheap) or the strong (expensive) model. Here a router
is a score per prompt — P(the weak model's answer is good enough) — and a threshold: scores
**below** the threshold go to the strong model. Sweeping the threshold traces the
*routing curve*: mean quality against the share of strong-model calls, from all-weak (share 0)
to all-strong (share 1).

- PGR (performance gap recovered) at a point: ``(quality - weak) / (strong - weak)``.
- APGR: the area under the PGR curve over strong-call share 0..1. Random routing scores 0.5.
  RouteLLM samples the curve at 10 quantile thresholds; here the curve is exact (every distinct
  score is a point, ties interpolated linearly = random tie-breaking).
- CPT(x%): the smallest strong-call share reaching PGR x (linear between curve points).
- Cost reduction at a quality target: 1 - cost / all-strong cost at the smallest share whose
  quality reaches ``fraction x strong quality``; with per-call prices, a weak call costing
  ``weak_cost_ratio`` of a strong one.
- AUROC: how well the score ranks prompts the weak model handles above those it does not.

Only numpy: the training pipeline and the offline evaluation both import this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class RoutingCurve:
    """Points of the quality / strong-call-share curve, by increasing share."""

    strong_share: Array
    """Share of prompts sent to the strong model at each point (0 first, 1 last)."""
    quality: Array
    """Mean quality at each point."""
    thresholds: Array
    """Threshold giving each point: prompts with score < threshold go to the strong model."""
    weak_quality: float
    """Mean quality of the weak model alone (the first point)."""
    strong_quality: float
    """Mean quality of the strong model alone (the last point)."""

    @property
    def pgr(self) -> Array:
        """PGR at each point (0 when the two models are equally good)."""
        return pgr(self.quality, self.weak_quality, self.strong_quality)


@dataclass(frozen=True)
class OperatingPoint:
    """What one threshold does on one data set."""

    threshold: float
    strong_share: float
    quality: float
    quality_vs_strong: float
    """Quality divided by the strong model's quality."""
    pgr: float
    random_quality: float
    """Expected quality of random routing with the same strong-call share."""
    cost_reduction: float

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for JSON."""
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__}


def _vector(values: ArrayLike, name: str) -> Array:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


def pgr(quality: ArrayLike, weak_quality: float, strong_quality: float) -> Array:
    """Performance gap recovered; 0 everywhere when the gap is zero."""
    values = np.asarray(quality, dtype=np.float64)
    gap = strong_quality - weak_quality
    if gap == 0:
        return np.zeros_like(values)
    return (values - weak_quality) / gap


def routing_curve(scores: ArrayLike, weak: ArrayLike, strong: ArrayLike) -> RoutingCurve:
    """The exact routing curve of ``scores`` given each prompt's weak and strong quality."""
    s = _vector(scores, "scores")
    w = _vector(weak, "weak")
    g = _vector(strong, "strong")
    if not s.size == w.size == g.size:
        raise ValueError("scores, weak and strong must have the same length")
    n = s.size
    order = np.argsort(s, kind="stable")
    sorted_scores = s[order]
    gains = (g - w)[order]
    # One curve point per block of equal scores: the lowest-scored prompts go strong first.
    block_ends = np.flatnonzero(np.diff(sorted_scores)) + 1
    ends = np.concatenate(([0], block_ends, [n]))
    cumulative = np.concatenate(([0.0], np.cumsum(gains)))
    weak_quality = float(w.mean())
    quality = weak_quality + cumulative[ends] / n
    # Threshold of a point = the score of the first prompt that still goes weak; past the
    # largest score, the next float above it (everything goes strong).
    thresholds = np.concatenate(
        (sorted_scores[ends[:-1]], [np.nextafter(sorted_scores[-1], np.inf)])
    )
    return RoutingCurve(
        strong_share=ends / n,
        quality=quality,
        thresholds=thresholds,
        weak_quality=weak_quality,
        strong_quality=float(g.mean()),
    )


def apgr(curve: RoutingCurve) -> float:
    """Average PGR over strong-call share 0..1 (trapezoid rule on the exact curve)."""
    values = curve.pgr
    widths = np.diff(curve.strong_share)
    return float(np.sum(widths * (values[1:] + values[:-1]) / 2.0))


def share_for_quality(curve: RoutingCurve, target_quality: float) -> float:
    """Smallest strong-call share at which the curve reaches ``target_quality``.

    Linear between curve points; 0 if the weak model alone reaches it, 1 if nothing short of
    all-strong does (or not even that, when the target is above every point).
    """
    quality = curve.quality
    reached = np.flatnonzero(quality >= target_quality - 1e-12)
    if reached.size == 0:
        return 1.0
    first = int(reached[0])
    if first == 0:
        return 0.0
    q0, q1 = quality[first - 1], quality[first]
    x0, x1 = curve.strong_share[first - 1], curve.strong_share[first]
    return float(x0 + (x1 - x0) * (target_quality - q0) / (q1 - q0))


def cpt(curve: RoutingCurve, pgr_target: float) -> float:
    """CPT: the strong-call share needed to recover ``pgr_target`` (e.g. 0.5) of the gap."""
    gap = curve.strong_quality - curve.weak_quality
    if gap <= 0:
        return 0.0
    return share_for_quality(curve, curve.weak_quality + pgr_target * gap)


def cost_reduction(strong_share: float, weak_cost_ratio: float = 0.0) -> float:
    """1 - cost / all-strong cost, a weak call costing ``weak_cost_ratio`` of a strong one."""
    if not 0.0 <= weak_cost_ratio <= 1.0:
        raise ValueError("weak_cost_ratio must be in [0, 1]")
    return (1.0 - strong_share) * (1.0 - weak_cost_ratio)


def cost_reduction_at_quality(
    curve: RoutingCurve, fraction_of_strong: float = 0.95, weak_cost_ratio: float = 0.0
) -> float:
    """Cost reduction at the first point reaching ``fraction_of_strong x`` strong quality."""
    share = share_for_quality(curve, fraction_of_strong * curve.strong_quality)
    return cost_reduction(share, weak_cost_ratio)


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    s = _vector(scores, "scores")
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.size != y.size:
        raise ValueError("scores and labels must have the same length")
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUROC needs both positive and negative labels")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_scores = s[order]
    # Average ranks over ties (Mann-Whitney U).
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_scores)) + 1))
    ends = np.concatenate((starts[1:], [s.size]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def safe_auroc(scores: ArrayLike, labels: ArrayLike) -> float | None:
    """AUROC, or ``None`` when the labels are all one class (nothing to separate)."""
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if y.size == 0 or y.all() or not y.any():
        return None
    return auroc(np.asarray(scores, dtype=np.float64), y)


def operating_point(
    scores: ArrayLike,
    weak: ArrayLike,
    strong: ArrayLike,
    threshold: float,
    weak_cost_ratio: float = 0.0,
) -> OperatingPoint:
    """Strong-call share, quality, PGR and cost reduction of one threshold."""
    s = _vector(scores, "scores")
    w = _vector(weak, "weak")
    g = _vector(strong, "strong")
    to_strong = s < threshold
    share = float(to_strong.mean())
    quality = float(np.where(to_strong, g, w).mean())
    weak_quality, strong_quality = float(w.mean()), float(g.mean())
    return OperatingPoint(
        threshold=float(threshold),
        strong_share=share,
        quality=quality,
        quality_vs_strong=quality / strong_quality if strong_quality else 0.0,
        pgr=float(pgr(quality, weak_quality, strong_quality)),
        random_quality=weak_quality + share * (strong_quality - weak_quality),
        cost_reduction=cost_reduction(share, weak_cost_ratio),
    )


def threshold_for_share(curve: RoutingCurve, max_strong_share: float) -> float:
    """The threshold of the point with the most strong calls not above ``max_strong_share``."""
    eligible = np.flatnonzero(curve.strong_share <= max_strong_share + 1e-12)
    return float(curve.thresholds[int(eligible[-1])])


def threshold_for_quality(curve: RoutingCurve, target_quality: float) -> float:
    """The threshold of the first point (fewest strong calls) reaching ``target_quality``."""
    reached = np.flatnonzero(curve.quality >= target_quality - 1e-12)
    index = int(reached[0]) if reached.size else len(curve.quality) - 1
    return float(curve.thresholds[index])


def summary(
    scores: ArrayLike, weak: ArrayLike, strong: ArrayLike, labels: ArrayLike | None = None
) -> dict[str, float]:
    """The headline numbers of a router on one data set (AUROC only when labels are given)."""
    curve = routing_curve(scores, weak, strong)
    result = {
        "n": float(np.asarray(scores).size),
        "weak_quality": curve.weak_quality,
        "strong_quality": curve.strong_quality,
        "apgr": apgr(curve),
        "cpt50": cpt(curve, 0.5),
        "cpt80": cpt(curve, 0.8),
        "cost_reduction_at_95": cost_reduction_at_quality(curve, 0.95),
    }
    if labels is not None:
        y = np.asarray(labels).astype(bool)
        if y.any() and not y.all():
            result["auroc"] = auroc(scores, y)
    return result
