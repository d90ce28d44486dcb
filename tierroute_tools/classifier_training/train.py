"""Fit the logistic head on the training split; choose its regularisation on validation.

The head is scikit-learn's L2-regularised logistic regression (lbfgs, deterministic) on the
L2-normalised embeddings. The inverse regularisation strength ``C`` is chosen by validation
APGR — the routing objective itself — among a small grid; ties go to the stronger
regularisation. The test split is only ever scored, never used to choose anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierroute import routing_metrics
from tierroute_tools.classifier_training.graph import Head, numpy_head

DEFAULT_C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
MAX_ITER = 5000


@dataclass(frozen=True)
class Candidate:
    """Validation result of one regularisation strength."""

    c: float
    auroc: float
    apgr: float


@dataclass(frozen=True)
class TrainedHead:
    """The chosen head and how it was chosen."""

    head: Head
    c: float
    candidates: tuple[Candidate, ...]


def fit_head(features: npt.NDArray[np.float32], labels: npt.NDArray[np.bool_], c: float) -> Head:
    """Logistic regression of ``labels`` on ``features`` with inverse regularisation ``c``."""
    from sklearn.linear_model import LogisticRegression

    if labels.all() or not labels.any():
        raise ValueError("training labels must contain both classes")
    model = LogisticRegression(C=c, max_iter=MAX_ITER, solver="lbfgs")
    model.fit(features.astype(np.float64), labels.astype(np.int64))
    return Head(
        weight=np.asarray(model.coef_[0], dtype=np.float32), bias=float(model.intercept_[0])
    )


def select_head(
    train_x: npt.NDArray[np.float32],
    train_y: npt.NDArray[np.bool_],
    valid_x: npt.NDArray[np.float32],
    valid_y: npt.NDArray[np.bool_],
    valid_weak: npt.NDArray[np.float64],
    valid_strong: npt.NDArray[np.float64],
    grid: Sequence[float] = DEFAULT_C_GRID,
) -> TrainedHead:
    """Fit one head per ``C`` on train, keep the best by validation APGR."""
    if not grid:
        raise ValueError("the C grid is empty")
    best: tuple[float, Head] | None = None
    best_apgr = -np.inf
    candidates = []
    for c in sorted(grid):
        head = fit_head(train_x, train_y, c)
        scores = numpy_head(valid_x, head)
        curve = routing_metrics.routing_curve(scores, valid_weak, valid_strong)
        apgr = routing_metrics.apgr(curve)
        candidates.append(Candidate(c=c, auroc=routing_metrics.auroc(scores, valid_y), apgr=apgr))
        # Strictly better only: with equal APGR the smaller C (stronger regularisation) stays.
        if apgr > best_apgr + 1e-9:
            best, best_apgr = (c, head), apgr
    assert best is not None
    return TrainedHead(head=best[1], c=best[0], candidates=tuple(candidates))
