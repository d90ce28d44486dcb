"""The start-tier replay: wasted cheaper-tier calls are counted and avoided once learned."""

from __future__ import annotations

from router_svc.start_tier import StartTierSettings
from tierroute_tools.evaluation.loop_replay import Item, Outcome, Prices
from tierroute_tools.evaluation.start_tier_replay import simulate, summarise

PRICES = Prices((0.05, 0.1), (0.5, 1.5))


def item(i: int) -> Item:
    hard = i % 2 == 0
    prompt = "def solve(grid): implement the algorithm" if hard else "what is the capital of Peru?"
    return Item(
        id=str(i),
        prompt=f"{prompt} #{i}",
        cheap_text="",
        pieces=(),
        confidence=0.5,
        cheap_correct=not hard,
        cheap_tokens=(20, 100),
        large_text="",
        large_correct=True,
        large_tokens=(20, 100),
    )


def test_learned_starts_avoid_predictable_escalations_without_losing_quality() -> None:
    items = [item(i) for i in range(200)]
    baseline = []
    for it in items:
        up = not it.cheap_correct  # the cascade escalates exactly the hard prompts
        cost = PRICES.cost("small", it.cheap_tokens) + (
            PRICES.cost("large", it.large_tokens) if up else 0.0
        )
        baseline.append(Outcome(up, True, cost, 0.0, 0.5, 0))
    latencies = {it.id: (1.0, 3.0) for it in items}
    steps = simulate(items, baseline, PRICES, StartTierSettings(enabled=True), latencies, 0)
    summary = summarise(items, baseline, steps, 50, 25, latencies)
    after = summary["after_warmup"]
    assert after["wasted_baseline"] == 75
    assert after["avoided_share"] > 0.5
    assert after["quality_learned"] >= after["quality_baseline"]
    assert after["cost_ratio"] < 1.0
    assert after["escalated_p50_latency_learned"] == 3.0  # one call instead of two
    assert after["explored"] > 0  # the exploration share keeps starting some cheap
