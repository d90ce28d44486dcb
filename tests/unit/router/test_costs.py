"""Cost arithmetic: tokens x prices, wasted tokens included, baseline on the largest tier."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_svc.costs import Prices, TokenUsage, request_costs, token_cost

PRICES = {"small": Prices(0.1, 0.2), "large": Prices(1.0, 2.0)}


def test_token_cost_is_per_million_tokens() -> None:
    assert token_cost(1_000_000, 0, Prices(3.0, 5.0)) == pytest.approx(3.0)
    assert token_cost(100, 50, Prices(1.0, 2.0)) == pytest.approx((100 * 1 + 50 * 2) / 1e6)


def test_served_small_saves_against_the_large_baseline() -> None:
    served = TokenUsage("small", 100, 50)
    costs = request_costs([served], PRICES, PRICES["large"], served)
    assert costs.cost_usd == pytest.approx((100 * 0.1 + 50 * 0.2) / 1e6)
    assert costs.baseline_cost_usd == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)
    assert costs.savings_usd == pytest.approx(costs.baseline_cost_usd - costs.cost_usd)
    assert costs.savings_usd > 0


def test_escalation_pays_for_the_wasted_small_tokens() -> None:
    wasted = TokenUsage("small", 100, 40, discarded=True)
    served = TokenUsage("large", 90, 30)
    costs = request_costs([wasted, served], PRICES, PRICES["large"], served)
    assert costs.per_tier == pytest.approx(((100 * 0.1 + 40 * 0.2) / 1e6, (90 + 60) / 1e6))
    assert costs.baseline_cost_usd == pytest.approx(costs.per_tier[1])
    assert costs.savings_usd == pytest.approx(-costs.per_tier[0])


def test_a_failed_request_has_no_baseline() -> None:
    costs = request_costs([TokenUsage("small", 5, 2, True)], PRICES, PRICES["large"], None)
    assert costs.baseline_cost_usd == 0 and costs.cost_usd > 0


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_cost_is_linear_and_nonnegative(prompt: int, completion: int) -> None:
    cost = token_cost(prompt, completion, PRICES["large"])
    assert cost >= 0
    assert cost == pytest.approx(
        token_cost(prompt, 0, PRICES["large"]) + token_cost(0, completion, PRICES["large"])
    )
