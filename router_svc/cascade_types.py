"""The cascade's vocabulary: modes, causes, what a tier streams, the plan, and the events.

Plain values with no gRPC and no behaviour beyond a threshold lookup; the state machine over
them is :mod:`router_svc.cascade`, which re-exports every name here.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from router_svc.costs import SpendCap, TokenUsage


class FallbackModeName(enum.StrEnum):
    """Cascade modes (mirrors ``tierroute.v1.FallbackMode`` without importing gRPC code)."""

    BUFFERED = "BUFFERED"
    STREAMING = "STREAMING"
    EARLY_WINDOW = "EARLY_WINDOW"
    DISABLED = "DISABLED"


class EscalationCauseName(enum.StrEnum):
    """Why a request moved to a larger tier; also the ``cause`` label of the metric."""

    LOW_CONFIDENCE = "low_confidence"
    EARLY_WINDOW = "early_window"
    TIER_ERROR = "tier_error"


# Covariant: the values are read-only, so a chunk of a richer payload is a chunk of a poorer one
# (the shadow sampler reads any payload with a ``text``).
Payload = TypeVar("Payload", covariant=True)
"""What a tier streamed for the caller (the router's tier client: the tier's ``TokenDelta``)."""
Detail = TypeVar("Detail", covariant=True)
"""The tier's final message, passed through to the caller (the router's: ``Finished``)."""


@dataclass(frozen=True, slots=True)
class Chunk(Generic[Payload]):
    """Tokens a tier streamed: an opaque payload for the caller plus what the cascade reads."""

    payload: Payload
    tokens: int
    running_confidence: float


@dataclass(frozen=True, slots=True)
class TierResult(Generic[Detail]):
    """The end of a tier's stream."""

    finish_reason: int
    prompt_tokens: int
    completion_tokens: int
    confidence: float
    """The model service's own confidence in the answer, in [0, 1]."""
    detail: Detail
    """Opaque extra (the tier's whole final message) passed through to the caller."""
    score: float | None = None
    """Escalation score of the answer (the quality loop's learned score), in [0, 1]; None:
    the confidence is the score."""

    @property
    def escalation_score(self) -> float:
        """What the cascade compares with the tier's threshold."""
        return self.confidence if self.score is None else self.score


class TierFailure(Exception):
    """A tier call failed (after the tier client's own retries); ``code`` is a gRPC status name."""

    def __init__(self, tier: str, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{tier}: {code}: {message}")
        self.tier = tier
        self.code = code
        self.message = message
        self.field = field


TierOpener = Callable[[str], AsyncGenerator[Chunk[Payload] | TierResult[Detail], None]]
"""Opens the request's stream on the named tier; raises :class:`TierFailure` on failure."""


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """What the policy decided and how to escalate."""

    tiers: tuple[str, ...]
    """All tier names, cheapest first."""
    start: int
    """Index of the routed tier in ``tiers``."""
    mode: FallbackModeName
    threshold: float
    """Confidence below this escalates (also the early window's running-confidence bar)."""
    early_window_tokens: int
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """Per-tier thresholds of the finished answer's escalation score (the quality loop's);
    a tier not named uses ``threshold``."""
    spend_cap: SpendCap | None = None
    """The caller's cost cap over the tier calls (``None``: no cap)."""

    def threshold_of(self, tier: str) -> float:
        """The bar ``tier``'s finished answer's escalation score must reach to be served."""
        return self.thresholds.get(tier, self.threshold)


@dataclass(frozen=True, slots=True)
class Forward(Generic[Payload]):
    """Tokens to send to the caller now."""

    tier: str
    chunk: Chunk[Payload]


@dataclass(frozen=True, slots=True)
class Escalation:
    """The request moved from ``from_tier`` to ``to_tier``."""

    from_tier: str
    to_tier: str
    cause: EscalationCauseName
    confidence_score: float
    reason: str
    discarded_tokens: int


@dataclass(frozen=True, slots=True)
class Outcome(Generic[Detail]):
    """The served answer is complete."""

    served_tier: str
    result: TierResult[Detail]
    usages: tuple[TokenUsage, ...]
    escalated: bool
    degraded: bool
    degraded_reason: str


CascadeEvent = Forward[Payload] | Escalation | Outcome[Detail]
