"""Properties of the learned start tier (hypothesis): within the tiers, exploration, reset."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.start_tier import (
    CheapFeatures,
    StartTierLearner,
    StartTierSettings,
    TierPrice,
    start_index,
)

probabilities = st.floats(min_value=0, max_value=1, allow_nan=False)
texts = st.text(max_size=200)


@st.composite
def priced_tiers(draw: st.DrawFn) -> list[TierPrice]:
    """Two to five tiers, cheapest first (non-decreasing prices)."""
    n = draw(st.integers(2, 5))
    prices = sorted(draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
    return [TierPrice(p, 2 * p) for p in prices]


@given(
    st.lists(probabilities, min_size=1, max_size=6),
    st.lists(st.floats(0, 1e3, allow_nan=False), min_size=7, max_size=7),
    st.integers(-3, 10),
)
def test_the_choice_is_always_a_configured_tier(
    p: list[float], costs: list[float], lo: int
) -> None:
    index = start_index(p, sorted(costs[: len(p) + 1]), lo)
    assert 0 <= index <= len(p)
    assert index >= min(max(lo, 0), len(p))


@settings(max_examples=40, deadline=None)
@given(priced_tiers(), st.lists(st.tuples(texts, probabilities, st.booleans()), max_size=30))
def test_never_starts_above_the_largest_tier(
    prices: list[TierPrice], stream: list[tuple[str, float, bool]]
) -> None:
    tiers = tuple(f"t{i}" for i in range(len(prices)))
    model = StartTierLearner(
        tiers,
        prices,
        StartTierSettings(enabled=True, refit_every=5, exploration=0.1),
        CheapFeatures(32),
        rng=random.Random(1),
        background=False,
    )
    for text, score, escalated in stream:
        choice = model.choose(text, score)
        assert 0 <= choice.index < len(tiers)
        tried = tiers[choice.index :] if escalated else tiers[choice.index : choice.index + 1]
        model.observe(text, score, tried, set(tried[:-1]))


@settings(max_examples=20, deadline=None)
@given(st.floats(0.05, 0.5), st.integers(0, 2**32 - 1))
def test_exploration_keeps_its_share(share: float, seed: int) -> None:
    model = StartTierLearner(
        ("small", "large"),
        [TierPrice(1, 1), TierPrice(10, 10)],
        StartTierSettings(enabled=True, exploration=share, refit_every=10_000),
        CheapFeatures(16),
        rng=random.Random(seed),
        background=False,
    )
    # A prior that is sure every request escalates: only exploration starts cheap.
    n = 2000
    cheap = sum(model.choose("prompt", 1e-9).index == 0 for _ in range(n))
    explored_sd = (n * share * (1 - share)) ** 0.5
    assert abs(cheap - n * share) <= 5 * explored_sd


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(texts, st.booleans()), min_size=1, max_size=40), texts)
def test_a_reset_forgets(stream: list[tuple[str, bool]], probe: str) -> None:
    def fresh() -> StartTierLearner:
        return StartTierLearner(
            ("small", "large"),
            [TierPrice(1, 1), TierPrice(10, 10)],
            StartTierSettings(enabled=True, exploration=0.0, refit_every=3),
            CheapFeatures(16),
            background=False,
        )

    model = fresh()
    for text, escalated in stream:
        model.observe(text, 0.5, ("small", "large") if escalated else ("small",), {"small"})
    model.reset()
    assert (model.version, model.trained) == (0, 0)
    assert model.choose(probe, 0.3).p_escalate == fresh().choose(probe, 0.3).p_escalate
