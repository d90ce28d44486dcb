"""Cost arithmetic of a routed request: tokens times prices, baseline on the largest tier, savings.

Pure functions over plain numbers. A request's cost includes every tier it touched, the tokens
of answers discarded on escalation too; its baseline is the served answer's tokens priced on the
largest tier, i.e. what the same request would have cost without routing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_PER_MTOK = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Prices:
    """A tier's price table (US dollars per 1,000,000 tokens)."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens one tier used for one request."""

    tier: str
    prompt_tokens: int
    completion_tokens: int
    discarded: bool = False


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Costs of one request (US dollars)."""

    per_tier: tuple[float, ...]
    """Cost of each :class:`TokenUsage`, in the same order."""
    cost_usd: float
    """Sum of ``per_tier``: wasted tokens included."""
    baseline_cost_usd: float
    """The served tokens on the largest tier."""
    savings_usd: float
    """``baseline_cost_usd - cost_usd``; negative when escalation cost more than going large."""


def token_cost(prompt_tokens: int, completion_tokens: int, prices: Prices) -> float:
    """Cost of ``prompt_tokens`` in and ``completion_tokens`` out at ``prices`` (US dollars)."""
    return (
        prompt_tokens * prices.input_usd_per_mtok + completion_tokens * prices.output_usd_per_mtok
    ) / _PER_MTOK


def request_costs(
    usages: Sequence[TokenUsage],
    prices: dict[str, Prices],
    baseline_prices: Prices,
    served: TokenUsage | None,
) -> CostBreakdown:
    """Cost, baseline and savings of a request that used ``usages``; ``served`` is the kept answer.

    ``served`` is ``None`` when no answer was kept (the request failed): the baseline is then 0.
    """
    per_tier = tuple(
        token_cost(u.prompt_tokens, u.completion_tokens, prices[u.tier]) for u in usages
    )
    cost = sum(per_tier, 0.0)
    baseline = (
        0.0
        if served is None
        else token_cost(served.prompt_tokens, served.completion_tokens, baseline_prices)
    )
    return CostBreakdown(
        per_tier=per_tier, cost_usd=cost, baseline_cost_usd=baseline, savings_usd=baseline - cost
    )
