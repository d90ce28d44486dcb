"""Prices per model and the cost of each recorded call.

A price is US dollars per 1,000,000 input and output tokens. A call's cost is its tokens times
its model's prices. Outcome rows may carry the token counts of each model's answer (``tokens``);
when they do not (the RouteLLM data does not), the cost is estimated and the estimate is stated:
the prompt's length in characters divided by ``chars_per_token`` as input tokens and a fixed
``output_tokens`` per answer, the same for both models, so only the prices tell the models apart.

The default prices of the RouteLLM models are the blended per-token prices RouteLLM's paper
assumes (GPT-4 $24.7, Mixtral-8x7B $0.24 per 1M tokens; Ong et al., 2024, arXiv:2406.18665).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, Outcome

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Price:
    """US dollars per 1M input and per 1M output tokens."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def __post_init__(self) -> None:
        if min(self.input_usd_per_mtok, self.output_usd_per_mtok) < 0:
            raise ValueError("prices must be >= 0")

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """Dollars for one call with these token counts."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


DEFAULT_PRICES: Mapping[str, Price] = {
    STRONG_MODEL: Price(24.7, 24.7),
    WEAK_MODEL: Price(0.24, 0.24),
}
"""RouteLLM's assumed blended prices of its two models (see the module docstring)."""


@dataclass(frozen=True)
class TokenAssumption:
    """Token counts assumed for a call when the outcome row has none."""

    chars_per_token: float = 4.0
    """Prompt characters per input token (English text runs ~4 for GPT-style tokenizers)."""
    output_tokens: int = 256
    """Tokens of every answer."""

    def describe(self) -> str:
        """One sentence for reports."""
        return (
            f"token counts missing: input tokens = prompt characters / {self.chars_per_token:g}, "
            f"output tokens = {self.output_tokens} per answer, the same for every model"
        )


DEFAULT_ASSUMPTION = TokenAssumption()


def parse_prices(specs: Sequence[str]) -> dict[str, Price]:
    """``MODEL=IN,OUT`` (dollars per 1M tokens) or ``MODEL=PRICE`` (both the same) per item."""
    prices = {}
    for spec in specs:
        model, sep, values = spec.rpartition("=")
        if not sep or not model:
            raise ValueError(f"price {spec!r}: expected MODEL=IN,OUT")
        parts = values.split(",")
        try:
            numbers = [float(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"price {spec!r}: {exc}") from exc
        if len(numbers) == 1:
            numbers *= 2
        if len(numbers) != 2 or not all(math.isfinite(n) for n in numbers):
            raise ValueError(f"price {spec!r}: expected MODEL=IN,OUT")
        prices[model] = Price(numbers[0], numbers[1])
    return prices


def resolve_prices(
    models: Sequence[str], given: Mapping[str, Price] | None = None
) -> dict[str, Price]:
    """The price of each of ``models``: given ones first, then the defaults; error if neither."""
    table = {**DEFAULT_PRICES, **(given or {})}
    missing = [m for m in models if m not in table]
    if missing:
        raise ValueError(f"no price for {', '.join(missing)}: pass --prices MODEL=IN,OUT")
    return {m: table[m] for m in models}


def call_costs(
    outcomes: Sequence[Outcome],
    model: str,
    price: Price,
    assumption: TokenAssumption = DEFAULT_ASSUMPTION,
) -> tuple[Array, int]:
    """Cost of ``model`` answering each outcome's prompt, and how many rows used the assumption."""
    costs = np.empty(len(outcomes), dtype=np.float64)
    assumed = 0
    for index, outcome in enumerate(outcomes):
        counts = outcome.tokens.get(model) if outcome.tokens is not None else None
        if counts is not None:
            costs[index] = price.cost(counts.input, counts.output)
            continue
        assumed += 1
        input_tokens = math.ceil(len(outcome.prompt) / assumption.chars_per_token)
        costs[index] = price.cost(input_tokens, assumption.output_tokens)
    return costs, assumed
