"""Routing policies as scores over a data set, in the convention of ``routing_metrics``.

A policy gives each prompt a score — higher means "the weak model will do" — and an operating
threshold: prompts scoring below it go to the strong model. Sweeping the threshold over all
scores traces the policy's quality / strong-call-share curve.

- ``classifier``: the trained classifier's probability; threshold = its calibrated one.
- ``rules+classifier``: what the router does — a rule's decision first, the classifier otherwise.
  For the sweep, a rule sending a prompt to the largest tier ranks it below every classifier
  score (it goes strong first) and a rule sending it to the cheapest ranks it above (strong
  last); at any threshold in [0, 1] the routing equals the router's
  (``RoutingPolicy.decide``): ``tests/unit/evaluation/test_policy_parity.py`` checks this on
  random scores, thresholds and rule matches.
- ``random``: uniform random scores (seeded); threshold = the target strong-call share.
- ``oracle``: knows the outcomes: score = weak quality - strong quality, so the prompts where
  the strong model gains most go strong first; threshold 0 (strong only where it is better).
- ``always-weak`` / ``always-strong``: fixed, one point each (no sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_svc.rules import RuleMatch

Array = npt.NDArray[np.float64]

CLASSIFIER = "classifier"
RULES_CLASSIFIER = "rules+classifier"
RANDOM = "random"
ORACLE = "oracle"
ALWAYS_WEAK = "always-weak"
ALWAYS_STRONG = "always-strong"
POLICY_NAMES: tuple[str, ...] = (
    CLASSIFIER,
    RULES_CLASSIFIER,
    RANDOM,
    ALWAYS_WEAK,
    ALWAYS_STRONG,
    ORACLE,
)
# Rule decisions rank outside the classifier's [0, 1] range (see the module docstring).
RULE_STRONG_SCORE = -1.0
RULE_WEAK_SCORE = 2.0


@dataclass(frozen=True)
class Policy:
    """Scores of one policy over a data set, or a fixed strong-call share."""

    name: str
    scores: Array | None
    """Per-prompt scores (lower = strong first); ``None`` for a fixed policy."""
    threshold: float | None
    """Operating threshold (scores below go strong); ``None`` for a fixed policy."""
    fixed_share: float | None = None
    """0 (always weak) or 1 (always strong) for a fixed policy."""

    def __post_init__(self) -> None:
        if (self.scores is None) == (self.fixed_share is None):
            raise ValueError(f"policy {self.name}: give either scores or a fixed share")

    @property
    def sweeps(self) -> bool:
        """Whether the policy has a curve (a threshold to sweep)."""
        return self.scores is not None

    def routes_strong(self, size: int) -> npt.NDArray[np.bool_]:
        """Which prompts go to the strong model at the operating point."""
        if self.scores is None:
            return np.full(size, bool(self.fixed_share), dtype=bool)
        assert self.threshold is not None
        return np.asarray(self.scores < self.threshold, dtype=bool)


def classifier_policy(scores: npt.ArrayLike, threshold: float) -> Policy:
    """The trained classifier alone."""
    return Policy(CLASSIFIER, np.asarray(scores, dtype=np.float64), float(threshold))


def rules_classifier_policy(
    targets: Sequence[str | None], scores: npt.ArrayLike, threshold: float
) -> Policy:
    """Rules first (``"largest"``, ``"cheapest"`` or ``None`` per prompt), then the classifier."""
    values = np.array(scores, dtype=np.float64)
    if len(targets) != values.size:
        raise ValueError("one rule target per prompt is needed")
    for index, target in enumerate(targets):
        if target == "largest":
            values[index] = RULE_STRONG_SCORE
        elif target == "cheapest":
            values[index] = RULE_WEAK_SCORE
        elif target is not None:
            raise ValueError(f"unknown rule target {target!r}")
    return Policy(RULES_CLASSIFIER, values, float(threshold))


def random_policy(size: int, seed: int = 0, strong_share: float = 0.5) -> Policy:
    """Uniform random scores; the operating point sends ``strong_share`` strong on average."""
    rng = np.random.default_rng(seed)
    return Policy(RANDOM, rng.random(size), float(strong_share))


def oracle_policy(weak: npt.ArrayLike, strong: npt.ArrayLike) -> Policy:
    """Routing with hindsight: the biggest strong-model gains go strong first."""
    gain = np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)
    return Policy(ORACLE, -gain, 0.0)


def always_weak() -> Policy:
    """Every prompt to the weak model."""
    return Policy(ALWAYS_WEAK, None, None, fixed_share=0.0)


def always_strong() -> Policy:
    """Every prompt to the strong model."""
    return Policy(ALWAYS_STRONG, None, None, fixed_share=1.0)


def rule_targets(
    prompts: Sequence[str], evaluate: Callable[[str], RuleMatch | None]
) -> list[str | None]:
    """Each prompt's rule decision, ``"largest"``, ``"cheapest"`` or ``None``.

    ``evaluate`` is ``RuleSet.evaluate`` of the router's rules.
    """
    targets: list[str | None] = []
    for prompt in prompts:
        match = evaluate(prompt)
        targets.append(None if match is None else match.target)
    return targets
