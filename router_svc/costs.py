"""Cost arithmetic of a routed request: tokens times prices, baseline on the largest tier, savings.

Pure functions over plain numbers. A request's cost includes every tier it touched, the tokens
of answers discarded on escalation too; its baseline is the served answer's tokens priced on the
largest tier, i.e. what the same request would have cost without routing.

Before a request runs, :func:`request_worst_case` prices the most it may cost: every tier of
the escalation chain it may reach called once, each with the largest prompt the request can
tokenize to and ``max_tokens`` generated (a discarded answer is paid for too). With a cap
(``options.max_cost_usd``) the chain ends before the first tier that would take that sum over
it; :class:`SpendCap` is the same rule for the cascade, which checks it before every call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_PER_MTOK = 1_000_000.0
# Sums of float prices compared with a cap the caller computed from the same prices.
_CAP_TOLERANCE = 1e-9


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


@dataclass(frozen=True, slots=True)
class SpendCap:
    """The request's cap over the worst cases of the tier calls it makes (US dollars)."""

    call_usd: Mapping[str, float]
    """Worst-case cost of one call to each tier: the largest prompt, ``max_tokens`` out."""
    limit_usd: float
    """The caller's ``options.max_cost_usd``."""

    def committed(self, called: Sequence[str]) -> float:
        """Worst case of the calls already made (``called``: their tiers, repeats included)."""
        return sum((self.call_usd[tier] for tier in called), 0.0)

    def allows(self, called: Sequence[str], tier: str) -> bool:
        """Whether one more call, to ``tier``, keeps the worst case within the cap."""
        total = self.committed(called) + self.call_usd[tier]
        return total <= self.limit_usd * (1 + _CAP_TOLERANCE)

    def refusal(self, called: Sequence[str], tier: str) -> str:
        """Why ``tier`` is not called (for ``degraded_reason`` and errors)."""
        total = self.committed(called) + self.call_usd[tier]
        return (
            f"tier {tier} not tried: its worst case {self.call_usd[tier]:.6f} USD would take the "
            f"request's worst case to {total:.6f} USD, over options.max_cost_usd "
            f"{self.limit_usd:.6f} USD"
        )


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most a request may cost over the tiers it may reach."""

    tiers: tuple[str, ...]
    """The routed tier, then each larger tier the request may escalate to (cheapest first);
    empty when the routed tier alone would break the cap."""
    cost_usd: float
    """Sum of one worst-case call to each of ``tiers`` (US dollars)."""
    call_usd: Mapping[str, float]
    """Worst-case cost of one call to every configured tier (US dollars)."""
    capped: bool
    """True when the cap left a larger tier out of ``tiers``."""


def request_worst_case(
    tiers: Sequence[str],
    start: int,
    prices: Mapping[str, Prices],
    prompt_tokens: int,
    max_tokens: int,
    cap_usd: float | None = None,
) -> WorstCase:
    """The worst-case cost of a request routed to ``tiers[start]``, over the tiers it may reach.

    ``tiers`` are all tier names, cheapest first; ``prompt_tokens`` the most the prompt can
    tokenize to; ``max_tokens`` the completion limit. Each tier from the routed one upwards may
    be called and generate ``max_tokens`` in full (the cascade pays for discarded answers), so
    the worst case is the sum of those calls. With ``cap_usd`` the chain stops before the first
    tier that would take the sum over it, as the cascade does (:class:`SpendCap`). This is the
    amount to reserve from a budget before the request runs.
    """
    call_usd = {tier: token_cost(prompt_tokens, max_tokens, prices[tier]) for tier in tiers}
    cap = None if cap_usd is None else SpendCap(call_usd, cap_usd)
    reached: list[str] = []
    for tier in tiers[start:]:
        if cap is not None and not cap.allows(reached, tier):
            break
        reached.append(tier)
    return WorstCase(
        tiers=tuple(reached),
        cost_usd=sum((call_usd[t] for t in reached), 0.0),
        call_usd=call_usd,
        capped=len(reached) < len(tiers) - start,
    )
