"""Shadow sampling decisions and the agreement score."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from router_svc.cascade import Chunk, TierResult
from router_svc.costs import Prices
from router_svc.metrics import RouterMetrics
from router_svc.shadow import ShadowSampler, ShadowSettings, TextPayload, agreement


def sampler(rate: float, max_in_flight: int = 4) -> ShadowSampler:
    metrics = RouterMetrics(CollectorRegistry(), ["small", "large"], ["default"])
    return ShadowSampler(
        ShadowSettings(sample_rate=rate, max_in_flight=max_in_flight),
        metrics,
        "large",
        Prices(1, 2),
        random.Random(7),
    )


def test_agreement_is_a_similarity_in_unit_range() -> None:
    assert agreement("Paris", "Paris") == 1.0
    assert agreement("", "") == 1.0
    assert agreement("abc", "xyz") == 0.0
    assert 0 < agreement("The answer is 42.", "The answer is 41.") < 1


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_sampling_rate_is_respected(rate: float) -> None:
    s = sampler(rate)
    share = sum(s.wants() for _ in range(4000)) / 4000
    assert share == pytest.approx(rate, abs=0.03)


async def test_in_flight_shadows_are_bounded_and_cancelled_on_close() -> None:
    s = sampler(1.0, max_in_flight=1)

    async def never() -> AsyncIterator[Chunk[TextPayload] | TierResult[object]]:
        # A shadow that hangs until cancelled.
        await asyncio.Event().wait()
        yield TierResult(0, 0, 0, 0.0, None)  # pragma: no cover

    assert s.submit("small", "x", never)
    assert not s.submit("small", "y", never)
    assert not s.submit("large", "z", never)
    assert s.in_flight == 1
    await s.close()
    assert s.in_flight == 0
