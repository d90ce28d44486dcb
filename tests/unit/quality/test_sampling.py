"""Adaptive shadow sampling: high while evidence is thin, down to the floor as it grows."""

from __future__ import annotations

import random

import pytest

from router_svc.quality.sampling import AdaptiveSampler, SamplingDecision
from router_svc.quality.settings import QualitySettings


def sampler(seed: int = 7) -> AdaptiveSampler:
    return AdaptiveSampler(0.5, 0.02, 30, 0.25, random.Random(seed))


def test_rate_is_initial_then_decays_to_the_floor() -> None:
    s = sampler()
    assert s.rate(0) == s.rate(30) == 0.5
    assert s.rate(60) == pytest.approx(0.25)
    assert s.rate(300) == pytest.approx(0.05)
    assert s.rate(10_000) == 0.02
    rates = [s.rate(n) for n in range(0, 2000, 7)]
    assert rates == sorted(rates, reverse=True)


def test_escalated_requests_are_sampled_at_their_flat_rate() -> None:
    # Judging an escalated request needs no shadow call: its rate does not decay with evidence.
    s = sampler()
    assert s.rate(0, escalated=True) == s.rate(10_000, escalated=True) == pytest.approx(0.25)
    assert AdaptiveSampler.from_settings(QualitySettings()).rate(10**6, escalated=True) == 1.0


def test_decisions_follow_the_rate_and_carry_the_inverse_weight() -> None:
    s = sampler()
    decisions = [s.decide(60) for _ in range(8000)]
    assert sum(d.sampled for d in decisions) / 8000 == pytest.approx(0.25, abs=0.02)
    assert decisions[0].probability == pytest.approx(0.25)
    assert decisions[0].weight == pytest.approx(4.0)
    assert SamplingDecision(False, 0.0).weight == 0.0
    off = AdaptiveSampler(0.0, 0.0, 30, 1.0, random.Random(1))
    assert not any(off.decide(0).sampled for _ in range(100))


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        AdaptiveSampler(0.1, 0.2, 30, 0.5)
    with pytest.raises(ValueError):
        AdaptiveSampler(0.5, 0.1, 0, 0.5)
    with pytest.raises(ValueError):
        AdaptiveSampler(0.5, 0.1, 30, 1.5)


def test_from_settings() -> None:
    s = AdaptiveSampler.from_settings(QualitySettings(initial_rate=0.4, floor_rate=0.1))
    assert s.rate(0) == 0.4 and s.rate(10**6) == 0.1
