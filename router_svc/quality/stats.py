"""The few statistics the monitor and the controller need, in plain Python (no scipy at serving).

- :func:`effective_size`: Kish's effective sample size of weighted observations;
- :func:`wilson_bounds`: one-sided Wilson score bounds of a proportion;
- :func:`betainc`: the regularised incomplete beta function (Lentz continued fraction);
- :func:`binomial_cdf`: ``P(Binomial(n, p) <= k)`` through it, for Learn-then-Test p-values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 300


def effective_size(weights: Iterable[float]) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no weight)."""
    total = 0.0
    squares = 0.0
    for w in weights:
        total += w
        squares += w * w
    return total * total / squares if squares > 0 else 0.0


def wilson_bounds(proportion: float, n: float, delta: float) -> tuple[float, float]:
    """One-sided ``1 - delta`` Wilson score lower and upper bounds of a proportion.

    ``n`` may be fractional (an effective size); with ``n == 0`` nothing is known: (0, 1).
    The lower bound never decreases as ``n`` grows at a fixed ``proportion``.
    """
    if n <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, proportion))
    z = NormalDist().inv_cdf(1.0 - delta)
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = p + z2 / (2.0 * n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lower = max(0.0, (centre - half) / denominator)
    upper = min(1.0, (centre + half) / denominator)
    # Rounding must not put the bounds on the wrong side of the point estimate.
    return min(lower, p), max(upper, p)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta (modified Lentz; Numerical Recipes 6.4)."""
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` for ``a, b > 0`` and ``x`` in [0, 1]."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The fraction converges fast on this side of the mean; use the symmetry on the other.
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, max(0.0, front * _beta_fraction(a, b, x) / a))
    return min(1.0, max(0.0, 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return betainc(n - k, k + 1, 1.0 - p)
