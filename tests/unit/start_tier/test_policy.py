"""The policy with a learned start tier: after hints and rules, with the classifier as prior."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from router_svc.policy import REASON_START_TIER, RoutingPolicy
from router_svc.rules import RuleMatch
from router_svc.start_tier import StartChoice
from tests.unit.router.fakes import FakeClassifier, FakeRules

TIERS = ("small", "medium", "large")


@dataclass
class FakeStartTier:
    """Starts every request at ``index`` and records what it was told."""

    index: int = 1
    chosen: list[tuple[str, float | None]] = field(default_factory=list)
    observed: list[tuple[str, float | None, tuple[str, ...], frozenset[str]]] = field(
        default_factory=list
    )

    def choose(self, text: str, score: float | None, lowest: int = 0) -> StartChoice:
        self.chosen.append((text, score))
        return StartChoice(self.index, (0.5, 0.5), False)

    def observe(
        self,
        text: str,
        score: float | None,
        tiers_tried: Sequence[str],
        escalated_from: Collection[str],
    ) -> None:
        self.observed.append((text, score, tuple(tiers_tried), frozenset(escalated_from)))


def policy(start: FakeStartTier, classifier: FakeClassifier | None) -> RoutingPolicy:
    rules = FakeRules({"```": RuleMatch("rule:code_fence", "largest")})
    return RoutingPolicy(TIERS, rules=rules, classifier=classifier, threshold=0.6, start_tier=start)


async def test_the_learner_picks_any_tier_with_the_classifier_score_as_prior() -> None:
    start = FakeStartTier(index=1)
    decision = await policy(start, FakeClassifier(score=0.2)).decide("tell me a story")
    assert (decision.tier, decision.reason) == ("medium", REASON_START_TIER)
    assert start.chosen == [("tell me a story", 0.2)]
    assert REASON_START_TIER in policy(start, None).reasons


async def test_hints_and_rules_still_come_first_and_no_classifier_means_no_prior() -> None:
    start = FakeStartTier(index=0)
    p = policy(start, None)
    assert (await p.decide("x ```y```")).reason == "rule:code_fence"
    assert (await p.decide("anything", tier_hint="large")).tier == "large"
    assert (await p.decide("plain")).tier == "small"
    assert start.chosen == [("plain", None)]


async def test_outcomes_reach_the_learner_except_for_pinned_tiers() -> None:
    start = FakeStartTier()
    p = policy(start, FakeClassifier(score=0.7))
    decided = await p.decide("q")
    p.learn("q", decided, ("small", "medium"), {"small"})
    pinned = await p.decide("q", tier_hint="small")
    p.learn("q", pinned, ("small",), set())
    assert start.observed == [("q", 0.7, ("small", "medium"), frozenset({"small"}))]
