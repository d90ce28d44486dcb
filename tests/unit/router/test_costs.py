"""Cost arithmetic: tokens x prices, wasted tokens included, baseline on the largest tier."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_svc.costs import (
    Prices,
    SpendCap,
    TokenUsage,
    request_costs,
    request_worst_case,
    token_cost,
)

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


CHAIN = ("small", "medium", "large")
CHAIN_PRICES = {"small": Prices(1.0, 2.0), "medium": Prices(3.0, 6.0), "large": Prices(10.0, 20.0)}


def call(tier: str) -> float:
    return token_cost(1000, 500, CHAIN_PRICES[tier])


def test_worst_case_sums_every_tier_the_request_may_escalate_to() -> None:
    worst = request_worst_case(CHAIN, 0, CHAIN_PRICES, 1000, 500)
    assert worst.tiers == CHAIN and not worst.capped
    assert worst.cost_usd == pytest.approx(call("small") + call("medium") + call("large"))
    routed_large = request_worst_case(CHAIN, 2, CHAIN_PRICES, 1000, 500)
    assert routed_large.tiers == ("large",)
    assert routed_large.cost_usd == pytest.approx(call("large"))


def test_a_cap_ends_the_chain_before_the_tier_that_would_break_it() -> None:
    cap = call("small") + call("medium") + call("large") / 2
    worst = request_worst_case(CHAIN, 0, CHAIN_PRICES, 1000, 500, cap)
    assert worst.tiers == ("small", "medium") and worst.capped
    assert worst.cost_usd == pytest.approx(call("small") + call("medium"))
    assert worst.cost_usd <= cap
    exact = request_worst_case(CHAIN, 0, CHAIN_PRICES, 1000, 500, call("small") + call("medium"))
    assert exact.tiers == ("small", "medium")


def test_a_cap_below_the_routed_tier_reaches_nothing() -> None:
    worst = request_worst_case(CHAIN, 1, CHAIN_PRICES, 1000, 500, call("medium") * 0.99)
    assert worst.tiers == () and worst.cost_usd == 0 and worst.capped


@given(st.floats(0, 0.1), st.integers(0, 2))
def test_the_worst_case_never_exceeds_the_cap_and_agrees_with_the_cascade_rule(
    cap: float, start: int
) -> None:
    worst = request_worst_case(CHAIN, start, CHAIN_PRICES, 1000, 500, cap)
    assert worst.cost_usd <= cap * (1 + 1e-9)
    rule = SpendCap(worst.call_usd, cap)
    for i, tier in enumerate(worst.tiers):
        assert rule.allows(worst.tiers[:i], tier)
    if worst.capped and worst.tiers:
        assert not rule.allows(worst.tiers, CHAIN[start + len(worst.tiers)])
