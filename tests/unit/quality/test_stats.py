"""The plain-Python statistics against direct computations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.quality.stats import betainc, binomial_cdf, effective_size, wilson_bounds


def _direct_cdf(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


@settings(deadline=None)
@given(n=st.integers(1, 150), data=st.data(), p=st.floats(0.001, 0.999))
def test_binomial_cdf_matches_the_direct_sum(n: int, data: st.DataObject, p: float) -> None:
    k = data.draw(st.integers(-1, n + 1))
    expected = 0.0 if k < 0 else 1.0 if k >= n else _direct_cdf(k, n, p)
    assert binomial_cdf(k, n, p) == pytest.approx(expected, abs=1e-9)


def test_betainc_known_values() -> None:
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # the uniform distribution
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248)  # 1 - P(Bin(4, .4) <= 1)
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)
    assert betainc(3, 3, 0.0) == 0.0 and betainc(3, 3, 1.0) == 1.0
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)


def test_effective_size_is_kish() -> None:
    assert effective_size([1, 1, 1, 1]) == pytest.approx(4)
    assert effective_size([1, 3]) == pytest.approx(16 / 10)
    assert effective_size([]) == 0.0


def test_wilson_bounds_bracket_the_proportion_and_shrink() -> None:
    lower, upper = wilson_bounds(0.9, 100, 0.1)
    assert lower < 0.9 < upper
    assert lower == pytest.approx(0.8549, abs=1e-4)  # z = 1.2816, by hand
    wide = wilson_bounds(0.9, 10, 0.1)
    assert wide[0] < lower and wide[1] > upper
    assert wilson_bounds(0.5, 0, 0.1) == (0.0, 1.0)
    assert wilson_bounds(1.0, 50, 0.1)[1] == 1.0


@settings(deadline=None)
@given(p=st.floats(0, 1), n=st.floats(0.5, 5000), grow=st.floats(1, 100))
def test_wilson_lower_bound_never_loosens_with_more_evidence(
    p: float, n: float, grow: float
) -> None:
    assert wilson_bounds(p, n * grow, 0.1)[0] >= wilson_bounds(p, n, 0.1)[0] - 1e-12
