"""Learn-then-Test: the lowest escalation threshold certified to hold the quality target.

A cheaper tier keeps a request when its escalation score is ``>= t`` and escalates it
otherwise. The *loss* at ``t`` is the weighted share of the tier's judged requests that scored
``>= t`` and were judged unacceptable: the quality lost against sending them all to the
largest tier. It only grows as ``t`` falls. For ``alpha = 1 - target`` each candidate ``t``
tests ``H0: loss(t) > alpha`` with the exact binomial tail ``P(Binomial(n, alpha) <= k)`` on
Kish's effective count (``n`` rounded down, ``k`` up: both make the p-value larger). Fixed-
sequence testing walks the candidates from ``t = 1`` (everything escalates) downwards while
``p <= delta`` and keeps the last rejected ``t``: with probability ``1 - delta`` its loss is at
most ``alpha`` (Angelopoulos et al., "Learn then Test", arXiv:2110.01052), and no multiplicity
correction is needed because the order is fixed before looking at the data.

The candidates are the grid (``grid_step``) and every observed score. The loss is monotone in
``t`` and so is the p-value at a fixed ``n``, so walking down through the observed scores is the
same as walking the continuum of thresholds, which is what the risk-controlling bound of Bates
et al. ("Distribution-free, risk-controlling prediction sets", arXiv:2101.02703) certifies.
Without them, a learned score whose values crowd near 1 (most answers confidently acceptable)
would be certified only at the coarse grid point above the crowd.

When nothing is certified the answer depends on why. If even a sample free of errors could
not be certified at this effective size (``(1 - alpha)^n > delta``), the evidence is too thin
to say anything: the current threshold is held if its empirical loss is within ``alpha``.
Otherwise (or if the current threshold already fails on the evidence) the evidence speaks
against every candidate and the threshold goes to 1: escalate everything.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_svc.quality.stats import binomial_cdf

ESCALATE_ALL = 1.0
"""The most conservative threshold: with scores below 1, every request escalates."""


@dataclass(frozen=True)
class LttResult:
    """The threshold Learn-then-Test chose and the evidence behind it."""

    threshold: float
    reason: str
    """``certified`` (a test rejected at ``threshold``), ``underpowered`` (too little evidence
    to certify anything; the fallback held) or ``uncertified`` (escalate everything)."""
    loss: float
    """Empirical (weighted) loss at ``threshold``."""
    p_value: float
    """p-value of the test at ``threshold`` (1 when no test was rejected)."""
    evidence: int
    effective_samples: float

    @property
    def certified(self) -> bool:
        """Whether the threshold carries the ``1 - delta`` guarantee."""
        return self.reason == "certified"


def candidate_grid(step: float) -> list[float]:
    """Thresholds from 1 down to 0 by ``step`` (the most conservative first)."""
    if not 0.0 < step <= 1.0:
        raise ValueError("step must be in (0, 1]")
    count = math.floor(1.0 / step + 1e-9)
    grid = [round(1.0 - i * step, 10) for i in range(count + 1)]
    if grid[-1] > 0.0:
        grid.append(0.0)
    return grid


def powered_size(target: float, delta: float) -> int:
    """The smallest effective count at which an error-free sample certifies a threshold."""
    alpha = 1.0 - target
    if alpha <= 0.0:
        return sys.maxsize  # a zero-loss target is never certified
    return math.ceil(math.log(delta) / math.log1p(-alpha) - 1e-9)


def choose_threshold(
    scores: Sequence[float],
    acceptable: Sequence[bool],
    weights: Sequence[float],
    *,
    target: float,
    delta: float,
    grid_step: float,
    fallback: float,
) -> LttResult:
    """The lowest candidate threshold certified by fixed-sequence testing (O(n log n + grid))."""
    n = len(scores)
    if not n == len(acceptable) == len(weights):
        raise ValueError("scores, acceptable and weights differ in length")
    if n == 0:
        return LttResult(fallback, "underpowered", 0.0, 1.0, 0, 0.0)
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    bad = 1.0 - np.asarray(acceptable, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    ascending = s[order]
    # Suffix sums over the ascending order: the weighted bad mass of scores >= t.
    bad_mass = np.concatenate([np.cumsum((w * bad)[order][::-1])[::-1], [0.0]])
    total = float(w.sum())
    n_eff = total * total / float(np.square(w).sum())
    n_int = math.floor(n_eff + 1e-9)
    alpha = 1.0 - target

    def loss_at(t: float) -> float:
        first = int(np.searchsorted(ascending, t, side="left"))
        return float(bad_mass[first]) / total

    candidates = sorted(set(candidate_grid(grid_step)) | set(ascending.tolist()), reverse=True)
    chosen: tuple[float, float, float] | None = None
    for t in candidates:
        loss = loss_at(t)
        k = math.ceil(loss * n_int - 1e-9)
        p = binomial_cdf(k, n_int, alpha) if alpha > 0 else 1.0
        if p > delta:
            break
        chosen = (t, loss, p)
    if chosen is not None:
        return LttResult(chosen[0], "certified", chosen[1], chosen[2], n, n_eff)
    held_loss = loss_at(fallback)
    if n_int < powered_size(target, delta) and held_loss <= alpha:
        return LttResult(fallback, "underpowered", held_loss, 1.0, n, n_eff)
    return LttResult(ESCALATE_ALL, "uncertified", loss_at(ESCALATE_ALL), 1.0, n, n_eff)
