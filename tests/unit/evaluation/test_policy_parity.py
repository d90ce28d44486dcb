"""The evaluation's array policies route exactly as the router's ``RoutingPolicy.decide``.

``tierroute_tools.evaluation.policies`` replays routing over whole data sets as arrays; the
router decides one prompt at a time. On random classifier scores, thresholds and rule matches
(scores equal to the threshold included: the router sends those to the cheapest tier), every
prompt must go to the same tier both ways.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.policy import RoutingPolicy
from router_svc.rules import RuleMatch, Target
from tierroute_tools.evaluation import policies

TIERS = ("weak", "strong")
# A score of None stands for "exactly the threshold" (the boundary case).
SCORE = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))
TARGET: st.SearchStrategy[Target | None] = st.sampled_from([None, "cheapest", "largest"])
THRESHOLD = st.floats(min_value=0.0, max_value=1.0)


class TableRules:
    """The router's rule interface over a table: prompt -> its rule match."""

    def __init__(self, matches: dict[str, RuleMatch]) -> None:
        self._matches = matches

    @property
    def names(self) -> tuple[str, ...]:
        """Every rule name."""
        return ("rule:to_cheapest", "rule:to_largest")

    def evaluate(self, text: str) -> RuleMatch | None:
        """The prompt's scripted match."""
        return self._matches.get(text)


class TableClassifier:
    """The router's classifier interface over a table: prompt -> its score."""

    def __init__(self, scores: dict[str, float]) -> None:
        self._scores = scores

    async def score(self, text: str) -> float:
        """The prompt's scripted score."""
        return self._scores[text]


def router_strong(
    prompts: list[str], rules: TableRules | None, scores: dict[str, float], threshold: float
) -> list[bool]:
    """Whether the router's own policy sends each prompt to the strong (largest) tier."""
    policy = RoutingPolicy(
        TIERS, rules=rules, classifier=TableClassifier(scores), threshold=threshold
    )

    async def decide_all() -> list[bool]:
        return [(await policy.decide(p)).tier == TIERS[-1] for p in prompts]

    return asyncio.run(decide_all())


def table(
    rows: list[tuple[float | None, Target | None]], threshold: float
) -> tuple[list[str], dict[str, float], dict[str, RuleMatch]]:
    prompts = [f"prompt {i}" for i in range(len(rows))]
    scores = {p: threshold if s is None else s for p, (s, _) in zip(prompts, rows, strict=True)}
    matches = {
        p: RuleMatch(f"rule:to_{target}", target)
        for p, (_, target) in zip(prompts, rows, strict=True)
        if target is not None
    }
    return prompts, scores, matches


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(SCORE, TARGET), min_size=1, max_size=40), threshold=THRESHOLD)
def test_rules_then_classifier_equals_the_router(
    rows: list[tuple[float | None, Target | None]], threshold: float
) -> None:
    prompts, scores, matches = table(rows, threshold)
    rules = TableRules(matches)
    # The targets as the evaluation reads them: through the router's rule interface.
    targets = policies.rule_targets(prompts, rules.evaluate)
    array = policies.rules_classifier_policy(targets, [scores[p] for p in prompts], threshold)
    assert array.routes_strong(len(prompts)).tolist() == router_strong(
        prompts, rules, scores, threshold
    )


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(SCORE, st.none()), min_size=1, max_size=40), threshold=THRESHOLD)
def test_classifier_alone_equals_the_router(
    rows: list[tuple[float | None, Target | None]], threshold: float
) -> None:
    prompts, scores, _ = table(rows, threshold)
    array = policies.classifier_policy([scores[p] for p in prompts], threshold)
    assert array.routes_strong(len(prompts)).tolist() == router_strong(
        prompts, None, scores, threshold
    )


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(SCORE, TARGET), min_size=1, max_size=40),
    operating=THRESHOLD,
    swept=THRESHOLD,
)
def test_every_swept_threshold_equals_the_router_at_that_threshold(
    rows: list[tuple[float | None, Target | None]], operating: float, swept: float
) -> None:
    # The curve moves the threshold over the same scores: each point must be a router too.
    prompts, scores, matches = table(rows, operating)
    rules = TableRules(matches)
    array = policies.rules_classifier_policy(
        policies.rule_targets(prompts, rules.evaluate), [scores[p] for p in prompts], operating
    )
    assert array.scores is not None
    strong = (array.scores < swept).tolist()
    assert strong == router_strong(prompts, rules, scores, swept)
