"""The routing policy: which tier a prompt goes to, and why.

Order: an authorised tier hint, then the rules (first match wins), then the classifier (score
at or above the threshold: the cheapest tier; below: the largest, or, with ``largest_below``
set, the largest only below that and the cheapest in between: an unsure classifier defers to
the cascade, which decides from the answer), then the default tier (also
when the classifier fails or misses its time budget). With a learned start tier
(:mod:`router_svc.start_tier`) the classifier's score, when there is one, is only its prior:
the learner picks the start among all tiers from the configured prices and what the cascade
taught it, and :meth:`RoutingPolicy.learn` hands it each finished request's outcome. The
text given to the rules and the classifier is the routing text: a raw prompt's whole text, or
a chat's last user message (earlier turns and system messages are context, not the question).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from router_svc.classifier import Classifier
from router_svc.rules import RuleMatch
from router_svc.start_tier import StartChoice
from tierroute.errors import InvalidArgumentError, PermissionDeniedError

REASON_CLASSIFIER = "classifier"
REASON_TIER_HINT = "tier_hint"
REASON_DEFAULT = "default"
REASON_START_TIER = "start_tier"

_log = structlog.get_logger("router_svc.policy")


class StartTier(Protocol):
    """What the policy needs of a learned start tier (``StartTierLearner`` or a fake)."""

    def choose(self, text: str, score: float | None, lowest: int = 0) -> StartChoice:
        """The start tier of ``text`` given the classifier's ``score`` (its prior)."""
        ...

    def observe(
        self,
        text: str,
        score: float | None,
        tiers_tried: Sequence[str],
        escalated_from: Collection[str],
    ) -> None:
        """Learn from a finished request."""
        ...


class Rules(Protocol):
    """What the policy needs of a rule set (``router_svc.rules.RuleSet`` or a fake)."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every rule name the rule set can return."""
        ...

    def evaluate(self, text: str) -> RuleMatch | None:
        """The deciding rule, or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """A tier and the reason it was chosen."""

    tier: str
    reason: str
    """``rule:<name>``, ``classifier``, ``tier_hint`` or ``default``."""
    classifier_score: float | None
    threshold: float
    latency_seconds: float


class RoutingPolicy:
    """Decides the tier of a prompt; see the module docstring for the order."""

    def __init__(
        self,
        tiers: tuple[str, ...],
        *,
        rules: Rules | None,
        classifier: Classifier | None,
        threshold: float,
        default_tier: str | None = None,
        allow_tier_hint: bool = True,
        classifier_timeout: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        start_tier: StartTier | None = None,
        largest_below: float | None = None,
    ) -> None:
        if len(tiers) < 2:
            raise ValueError("a policy needs at least two tiers")
        if largest_below is not None and largest_below > threshold:
            raise ValueError(
                f"policy.classifier_largest_below ({largest_below}) must not exceed the "
                f"classifier threshold ({threshold})"
            )
        self._tiers = tiers
        self._rules = rules
        self._classifier = classifier
        self._threshold = threshold
        self._default = default_tier or tiers[0]
        self._allow_hint = allow_tier_hint
        self._classifier_timeout = classifier_timeout or None
        self._clock = clock
        self._start_tier = start_tier
        self._largest_below = threshold if largest_below is None else largest_below

    @property
    def threshold(self) -> float:
        """The classifier threshold in force."""
        return self._threshold

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason a decision can carry (a bounded label set for metrics)."""
        rule_names = self._rules.names if self._rules is not None else ()
        learned = (REASON_START_TIER,) if self._start_tier is not None else ()
        return (*rule_names, REASON_CLASSIFIER, REASON_TIER_HINT, REASON_DEFAULT, *learned)

    async def decide(self, text: str, tier_hint: str = "") -> RoutingDecision:
        """The decision for ``text`` (the routing text; see the module docstring)."""
        started = self._clock()
        if tier_hint:
            if tier_hint not in self._tiers:
                raise InvalidArgumentError(
                    "options.tier_hint",
                    # Bounded: the message travels back in a trailer (16 KiB hard limit).
                    f"unknown tier {tier_hint[:64]!r}; configured: {', '.join(self._tiers)}",
                )
            if not self._allow_hint:
                raise PermissionDeniedError("tier hints are not allowed on this router")
            return self._decision(tier_hint, REASON_TIER_HINT, None, started)
        if self._rules is not None:
            match = self._rules.evaluate(text)
            if match is not None:
                tier = self._tiers[0] if match.target == "cheapest" else self._tiers[-1]
                return self._decision(tier, match.name, None, started)
        score = await self._score(text)
        if self._start_tier is not None:
            choice = self._start_tier.choose(text, score)
            return self._decision(self._tiers[choice.index], REASON_START_TIER, score, started)
        if score is not None:
            tier = self._tiers[-1] if score < self._largest_below else self._tiers[0]
            return self._decision(tier, REASON_CLASSIFIER, score, started)
        return self._decision(self._default, REASON_DEFAULT, None, started)

    def learn(
        self,
        text: str,
        decision: RoutingDecision,
        tiers_tried: Sequence[str],
        escalated_from: Collection[str],
    ) -> None:
        """Tell the learned start tier how a request ended (nothing without one).

        A pinned tier (hint) is the caller's choice, not traffic the policy routes: not learned.
        """
        if self._start_tier is not None and decision.reason != REASON_TIER_HINT:
            self._start_tier.observe(text, decision.classifier_score, tiers_tried, escalated_from)

    async def _score(self, text: str) -> float | None:
        """The classifier's score, or ``None`` (no classifier, or it failed or was too slow)."""
        if self._classifier is not None:
            try:
                async with asyncio.timeout(self._classifier_timeout):
                    score = await self._classifier.score(text)
            except TimeoutError:
                # Overloaded classifier: keep the decision within budget; the cascade still
                # escalates an answer the default tier is not confident of.
                _log.warning("classifier too slow; using the default tier")
            except Exception as exc:
                # A failing or overloaded classifier must not take routing down: the default
                # tier serves (and the cascade still escalates an unconfident answer).
                _log.warning("classifier failed; using the default tier", error=repr(exc))
            else:
                return score
        return None

    def _decision(
        self, tier: str, reason: str, score: float | None, started: float
    ) -> RoutingDecision:
        return RoutingDecision(tier, reason, score, self._threshold, self._clock() - started)
