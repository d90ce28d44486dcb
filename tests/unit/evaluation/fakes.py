"""Scripted stand-ins (unit tests only): a router client whose tiers answer from a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model_svc.confidence import ConfidenceParams, confidence_of
from tierroute.client import Completion, Escalation, FinishedEvent, RoutedEvent, RouterError
from tierroute.v1 import common_pb2, router_service_pb2

PRICES = {"tiny": (0.01, 0.02), "small": (0.05, 0.10), "large": (0.50, 1.50)}
DEFAULT_PARAMS = ConfidenceParams()


@dataclass(frozen=True)
class Answer:
    """What one tier says to one prompt, and the log-probabilities of its tokens."""

    text: str
    logprobs: Sequence[float]


def _cost(tier: str, prompt_tokens: int, completion_tokens: int) -> float:
    price_in, price_out = PRICES[tier]
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


class ScriptedRouter:
    """``complete`` as the router would answer, from ``answers[tier][prompt]``.

    The tiers of ``answers`` form the chain in their order, cheapest first. No pin routes to
    ``routed`` (default: the first tier); unless the fallback is disabled, a tier whose
    confidence is below the threshold escalates to the next one. A prompt in ``failing``
    raises UNAVAILABLE; one in ``tier_errors`` fails on the first tier (cause ``tier_error``).
    """

    def __init__(
        self,
        answers: Mapping[str, Mapping[str, Answer]],
        *,
        threshold: float = 0.65,
        routed: Mapping[str, str] | None = None,
        failing: frozenset[str] = frozenset(),
        tier_errors: frozenset[str] = frozenset(),
        params: ConfidenceParams = DEFAULT_PARAMS,
    ) -> None:
        self.answers = answers
        self.tiers = tuple(answers)
        self.threshold = threshold
        self.routed = routed or {}
        self.failing = failing
        self.tier_errors = tier_errors
        self.params = params
        self.calls: list[dict[str, Any]] = []

    async def complete(self, prompt: str, **kwargs: Any) -> Completion:
        import grpc

        self.calls.append({"prompt": prompt, **kwargs})
        if prompt in self.failing:
            raise RouterError(grpc.StatusCode.UNAVAILABLE, "tier down")
        tier = kwargs.get("tier") or self.routed.get(prompt, self.tiers[0])
        mode = kwargs.get("fallback_mode")
        threshold = kwargs.get("fallback_threshold") or self.threshold
        prompt_tokens = len(prompt.split())
        usages = []
        escalations: list[Escalation] = []
        reason = "tier_hint" if kwargs.get("tier") else "classifier"
        routed = RoutedEvent(tier, reason, 0.5, "id")
        index = self.tiers.index(tier)
        if index == 0 and prompt in self.tier_errors:
            usages.append(self._usage(tier, 0, 0, True))
            escalations.append(Escalation(tier, self.tiers[1], "tier_error", 0.0, ""))
            index = 1
        while True:
            tier = self.tiers[index]
            answer = self.answers[tier][prompt]
            stats = confidence_of(answer.logprobs, self.params)
            last = index == len(self.tiers) - 1
            if last or mode == "disabled" or stats.score >= threshold:
                break
            usages.append(self._usage(tier, prompt_tokens, len(answer.logprobs), True))
            escalations.append(
                Escalation(tier, self.tiers[index + 1], "low_confidence", stats.score, "")
            )
            index += 1
        usages.append(self._usage(tier, prompt_tokens, len(answer.logprobs), False))
        cost = sum(u.cost_usd for u in usages)
        raw = router_service_pb2.RouterFinished(
            served_tier=tier,
            tier_usage=usages,
            cost_usd=cost,
            baseline_cost_usd=_cost(self.tiers[-1], prompt_tokens, len(answer.logprobs)),
            escalated=bool(escalations),
            confidence=common_pb2.Confidence(
                score=stats.score,
                mean_logprob=stats.mean_logprob,
                min_logprob=stats.min_logprob,
                min_window_logprob=stats.min_window_logprob,
                low_prob_fraction=stats.low_prob_fraction,
                token_count=stats.token_count,
            ),
        )
        finished = FinishedEvent(
            tier=tier,
            escalated=bool(escalations),
            degraded=False,
            degraded_reason="",
            cost_usd=cost,
            baseline_cost_usd=raw.baseline_cost_usd,
            savings_usd=raw.baseline_cost_usd - cost,
            confidence=stats.score,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(answer.logprobs),
            raw=raw,
        )
        return Completion(answer.text, routed, finished, tuple(escalations))

    @staticmethod
    def _usage(
        tier: str, prompt_tokens: int, completion_tokens: int, discarded: bool
    ) -> router_service_pb2.TierUsage:
        return router_service_pb2.TierUsage(
            tier=tier,
            usage=common_pb2.Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            ),
            cost_usd=_cost(tier, prompt_tokens, completion_tokens),
            discarded=discarded,
        )
