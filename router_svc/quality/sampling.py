"""Adaptive shadow sampling: sample a lot while a tier has little evidence, little once it has.

The rate for a tier holding ``n`` judged samples is
``max(floor_rate, initial_rate * min_samples / max(min_samples, n))``: the configured initial
rate until ``min_samples`` exist, then decaying like ``1/n`` down to the floor, so evidence
keeps arriving (the traffic may drift) at a bounded shadow cost. Escalated requests are sampled
at the flat ``escalated_rate`` (1 by default): the largest tier's answer is already there, so
judging them costs no shadow call, and they are the evidence that brings a threshold down from
a conservative warm-up (with a judge that costs a model call itself, such as ``llm``, lower
it). Every decision returns the probability used, so the sample carries the weight ``1/p`` and
weighted sums stay unbiased.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from router_svc.quality.settings import QualitySettings


@dataclass(frozen=True)
class SamplingDecision:
    """Whether to shadow one request, and the probability with which that was decided."""

    sampled: bool
    probability: float

    @property
    def weight(self) -> float:
        """The sample's weight (inverse probability); 0 when the probability was 0."""
        return 1.0 / self.probability if self.probability > 0 else 0.0


class AdaptiveSampler:
    """Decides which finished requests to shadow, at a rate that decays with the evidence."""

    def __init__(
        self,
        initial_rate: float,
        floor_rate: float,
        min_samples: int,
        escalated_rate: float,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= floor_rate <= initial_rate <= 1.0:
            raise ValueError("need 0 <= floor_rate <= initial_rate <= 1")
        if min_samples < 1:
            raise ValueError("min_samples must be >= 1")
        if not 0.0 <= escalated_rate <= 1.0:
            raise ValueError("escalated_rate must be in [0, 1]")
        self._initial = initial_rate
        self._floor = floor_rate
        self._min_samples = min_samples
        self._escalated_rate = escalated_rate
        self._rng = rng or random.Random()

    @classmethod
    def from_settings(
        cls, settings: QualitySettings, rng: random.Random | None = None
    ) -> AdaptiveSampler:
        """A sampler configured by ``settings``."""
        return cls(
            settings.initial_rate,
            settings.floor_rate,
            settings.min_samples,
            settings.escalated_rate,
            rng,
        )

    def rate(self, samples: int, escalated: bool = False) -> float:
        """Sampling probability for a request of a tier that holds ``samples`` judged samples."""
        if escalated:
            return self._escalated_rate
        decayed = self._initial * self._min_samples / max(self._min_samples, samples)
        return max(self._floor, decayed)

    def decide(self, samples: int, escalated: bool = False) -> SamplingDecision:
        """Draw whether to shadow this request; ``samples`` is the tier's current count."""
        p = self.rate(samples, escalated)
        return SamplingDecision(sampled=p > 0 and self._rng.random() < p, probability=p)
