"""Price parsing and call costs (with token counts and with the stated assumption)."""

from __future__ import annotations

import pytest

from tierroute.outcomes import STRONG_MODEL, Outcome, TokenCounts
from tierroute_tools.evaluation.prices import (
    DEFAULT_PRICES,
    Price,
    TokenAssumption,
    call_costs,
    parse_prices,
    resolve_prices,
)


def test_parse_prices() -> None:
    prices = parse_prices(["org/model-a=1.5,3", "b=2"])
    assert prices == {"org/model-a": Price(1.5, 3.0), "b": Price(2.0, 2.0)}
    for bad in ("nomodel", "=1,2", "a=x", "a=1,2,3"):
        with pytest.raises(ValueError):
            parse_prices([bad])


def test_resolve_prices_defaults_and_missing() -> None:
    assert resolve_prices([STRONG_MODEL]) == {STRONG_MODEL: DEFAULT_PRICES[STRONG_MODEL]}
    assert resolve_prices(["x"], {"x": Price(1, 1)}) == {"x": Price(1, 1)}
    with pytest.raises(ValueError, match="no price for y"):
        resolve_prices(["y"])


def test_call_costs_use_tokens_or_the_assumption() -> None:
    rows = [
        Outcome("a" * 400, {"m": 1.0}, "t", {"m": TokenCounts(1000, 2000)}),
        Outcome("b" * 400, {"m": 1.0}, "t"),
    ]
    costs, assumed = call_costs(rows, "m", Price(1.0, 10.0), TokenAssumption(4.0, 100))
    assert assumed == 1
    # 1000 * $1/M + 2000 * $10/M; then 100 input tokens and 100 output tokens.
    assert costs.tolist() == pytest.approx([0.021, 0.0011])
