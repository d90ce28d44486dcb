"""Which tier a request starts at, given P(escalated) per cheaper tier and the price of a call.

Starting at tier ``i`` costs its call and, with probability ``p_i``, whatever starting at
``i + 1`` costs (the cascade moves up one tier at a time); the largest tier costs its call:
``E_last = c_last``, ``E_i = c_i + p_i * E_(i+1)``. The start is the cheapest tier (at or
above ``lowest``) of least expected cost: a cheaper tier is worth trying exactly when the price
of its wasted call times ``p_i`` is below what it saves the other times. For two tiers that is
``p < 1 - c_small / c_large``.
"""

from __future__ import annotations

from collections.abc import Sequence


def expected_costs(p_escalate: Sequence[float], call_costs: Sequence[float]) -> list[float]:
    """``E_i`` of every tier (``len(call_costs) == len(p_escalate) + 1``)."""
    if len(call_costs) != len(p_escalate) + 1:
        raise ValueError("one escalation probability per tier below the largest")
    costs = [0.0] * len(call_costs)
    costs[-1] = call_costs[-1]
    for i in range(len(p_escalate) - 1, -1, -1):
        costs[i] = call_costs[i] + p_escalate[i] * costs[i + 1]
    return costs


def start_index(p_escalate: Sequence[float], call_costs: Sequence[float], lowest: int = 0) -> int:
    """The tier of least expected cost at or above ``lowest`` (ties: the cheaper one)."""
    costs = expected_costs(p_escalate, call_costs)
    lowest = max(0, min(lowest, len(costs) - 1))
    best = lowest
    for i in range(lowest + 1, len(costs)):
        if costs[i] < costs[best]:
            best = i
    return best
