"""The routing policy: tier hint, rules, classifier, default — in that order."""

from __future__ import annotations

import asyncio

import pytest

from router_svc.policy import RoutingPolicy
from router_svc.rules import RuleMatch
from tests.unit.router.fakes import FakeClassifier, FakeRules
from tierroute.errors import InvalidArgumentError, OverloadedError, PermissionDeniedError

TIERS = ("small", "medium", "large")
RULES = FakeRules(
    {
        "```": RuleMatch("rule:code_fence", "largest"),
        "hello": RuleMatch("rule:greeting", "cheapest"),
    }
)


def policy(classifier: FakeClassifier | None = None, **kwargs: object) -> RoutingPolicy:
    return RoutingPolicy(
        TIERS,
        rules=kwargs.pop("rules", RULES),  # type: ignore[arg-type]
        classifier=classifier,
        threshold=0.6,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_rule_decides_before_the_classifier() -> None:
    classifier = FakeClassifier(score=0.99)
    decision = await policy(classifier).decide("fix this ```x```")
    assert (decision.tier, decision.reason, decision.classifier_score) == (
        "large",
        "rule:code_fence",
        None,
    )
    assert classifier.calls == []
    assert (await policy(classifier).decide("hello")).tier == "small"


@pytest.mark.parametrize(("score", "tier"), [(0.6, "small"), (0.9, "small"), (0.59, "large")])
async def test_classifier_threshold_splits_cheapest_and_largest(score: float, tier: str) -> None:
    decision = await policy(FakeClassifier(score=score)).decide("what is the capital of France")
    assert (decision.tier, decision.reason) == (tier, "classifier")
    assert decision.classifier_score == pytest.approx(score)
    assert decision.threshold == pytest.approx(0.6)
    assert decision.latency_seconds >= 0


@pytest.mark.parametrize(
    ("score", "tier"), [(0.9, "small"), (0.5, "small"), (0.3, "small"), (0.29, "large")]
)
async def test_an_unsure_classifier_defers_to_the_cascade(score: float, tier: str) -> None:
    # Between largest_below and the threshold the classifier is not sure: the request starts
    # at the cheapest tier and the cascade decides from the answer; only a clearly hard prompt
    # goes straight to the largest tier.
    routed = await policy(FakeClassifier(score=score), largest_below=0.3).decide("a question")
    assert (routed.tier, routed.reason) == (tier, "classifier")


def test_largest_below_cannot_exceed_the_threshold() -> None:
    with pytest.raises(ValueError, match="classifier_largest_below"):
        policy(FakeClassifier(score=0.5), largest_below=0.7)


async def test_without_classifier_the_default_tier_serves() -> None:
    assert (await policy().decide("anything")).tier == "small"
    decision = await policy(default_tier="medium").decide("anything")
    assert (decision.tier, decision.reason) == ("medium", "default")


async def test_a_failing_classifier_falls_back_to_the_default() -> None:
    decision = await policy(FakeClassifier(error=OverloadedError("full"))).decide("question")
    assert (decision.tier, decision.reason) == ("small", "default")


async def test_tier_hint_wins_when_allowed() -> None:
    classifier = FakeClassifier()
    decision = await policy(classifier).decide("hello ```", tier_hint="medium")
    assert (decision.tier, decision.reason) == ("medium", "tier_hint")
    assert classifier.calls == []


async def test_tier_hint_refused_or_unknown() -> None:
    with pytest.raises(PermissionDeniedError):
        await policy(allow_tier_hint=False).decide("x", tier_hint="large")
    with pytest.raises(InvalidArgumentError) as info:
        await policy().decide("x", tier_hint="huge")
    assert info.value.field == "options.tier_hint"


def test_reasons_are_a_bounded_set() -> None:
    assert set(policy().reasons) == {
        "rule:code_fence",
        "rule:greeting",
        "classifier",
        "tier_hint",
        "default",
    }


async def test_latency_is_measured_with_the_injected_clock() -> None:
    ticks = iter([1.0, 1.25])
    p = RoutingPolicy(TIERS, rules=None, classifier=None, threshold=0.5, clock=lambda: next(ticks))
    assert (await p.decide("x")).latency_seconds == pytest.approx(0.25)


async def test_a_slow_classifier_misses_its_budget_and_the_default_tier_serves() -> None:
    class Slow(FakeClassifier):
        async def score(self, text: str) -> float:
            await asyncio.sleep(1)
            return 0.99

    p = RoutingPolicy(TIERS, rules=None, classifier=Slow(), threshold=0.5, classifier_timeout=0.02)
    decision = await p.decide("question")
    assert (decision.tier, decision.reason, decision.classifier_score) == ("small", "default", None)
    assert decision.latency_seconds < 0.5
