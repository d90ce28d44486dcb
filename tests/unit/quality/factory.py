"""Judged samples for tests, with every field defaulted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router_svc.quality.samples import JudgedSample


def sample(
    *,
    acceptable: bool = True,
    score: float = 0.9,
    tier: str = "small",
    served_tier: str | None = None,
    weight: float = 1.0,
    features: Mapping[str, float] | None = None,
    request_id: str = "r1",
    **overrides: Any,
) -> JudgedSample:
    """A judged sample of ``tier``; served by ``tier`` unless ``served_tier`` says otherwise."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant": "t1",
        "route": "classifier",
        "tier": tier,
        "served_tier": served_tier or tier,
        "tiers_tried": (tier,) if served_tier in (None, tier) else (tier, served_tier),
        "escalated": served_tier not in (None, tier),
        "score": score,
        "features": dict(features or {"confidence": score}),
        "routing_score": 0.7,
        "judge": "agreement",
        "acceptable": acceptable,
        "judge_score": 1.0 if acceptable else 0.0,
        "sample_weight": weight,
        "served_cost_usd": 0.001,
        "baseline_cost_usd": 0.01,
        "shadow_cost_usd": 0.01,
        "judge_cost_usd": 0.0,
        "time": 1_700_000_000.0,
    }
    fields.update(overrides)
    return JudgedSample(**fields)
