"""One request's tier answers, kept as they stream and scored when each tier finishes.

The quality loop escalates on a learned score of the cheaper tier's *answer*, which needs the
answer itself: :class:`AnswerRecorder` wraps each tier stream the cascade opens, keeps its
pieces (text and per-token log-probabilities), and when the tier's result arrives computes the
answer's features (:func:`tierroute.answer_features.answer_features` plus ``confidence``, the
model service's own score, which is the learned score's prior) and the escalation score of the
:class:`EscalationScorer` (the :class:`~router_svc.quality.QualityLoop`). The score travels in
:attr:`TierResult.score <router_svc.cascade.TierResult.score>`; the cascade compares it with the
tier's threshold and never learns where it came from. The kept answers then feed the judged
samples (:mod:`router_svc.judged_samples`).

No gRPC: a tier's payload is read through :class:`DeltaPayload` (the router's ``TokenDelta``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from router_svc.cascade import Chunk, TierResult
from tierroute.answer_features import Piece, answer_features

CONFIDENCE_FEATURE = "confidence"
"""The model service's confidence, also the learned score's prior."""


class DeltaPayload(Protocol):
    """What the recorder reads of a tier's chunk: its text and its tokens' log-probabilities."""

    @property
    def text(self) -> str:
        """The chunk's decoded text."""
        ...

    @property
    def logprobs(self) -> Sequence[float]:
        """Natural-log probabilities of the chunk's tokens."""
        ...


class EscalationScorer(Protocol):
    """Scores a cheaper tier's finished answer from its features (the quality loop)."""

    def escalation_score(self, tier: str, features: Mapping[str, float]) -> float:
        """The answer's escalation score in [0, 1]."""
        ...


@dataclass(slots=True)
class TierAnswer:
    """One tier's answer to the request, as streamed."""

    tier: str
    pieces: list[Piece] = field(default_factory=list)
    confidence: float | None = None
    """The model service's confidence; None until the tier finished."""
    features: dict[str, float] | None = None
    """Features of the finished answer (scored tiers only)."""
    score: float | None = None
    """Escalation score of the finished answer (scored tiers only)."""

    @property
    def text(self) -> str:
        """The answer's text so far."""
        return "".join(text for text, _ in self.pieces)

    @property
    def finished(self) -> bool:
        """Whether the tier's result arrived (an early-window abort or a failure never does)."""
        return self.confidence is not None


P = TypeVar("P", bound=DeltaPayload)
D = TypeVar("D")


class AnswerRecorder:
    """Keeps every tier answer of one request and scores the cheaper tiers' when they finish."""

    def __init__(
        self,
        scorer: EscalationScorer,
        scored_tiers: frozenset[str],
        prompt: str,
        attach_score: bool = True,
    ) -> None:
        """``attach_score`` False: answers are still scored and kept, but the results passed on
        carry no score, so the cascade compares the model's confidence (a caller's own
        ``fallback_threshold`` is a confidence threshold)."""
        self._scorer = scorer
        self._attach = attach_score
        self._scored = scored_tiers
        self._prompt = prompt
        self.answers: dict[str, TierAnswer] = {}

    def watch(
        self, tier: str, stream: AsyncIterator[Chunk[P] | TierResult[D]]
    ) -> AsyncGenerator[Chunk[P] | TierResult[D], None]:
        """``stream`` passed through, its answer kept, its result scored (for scored tiers)."""
        answer = TierAnswer(tier)
        # A tier asked again (a degraded request) starts a fresh answer.
        self.answers[tier] = answer
        return self._pass(answer, stream)

    async def _pass(
        self, answer: TierAnswer, stream: AsyncIterator[Chunk[P] | TierResult[D]]
    ) -> AsyncGenerator[Chunk[P] | TierResult[D], None]:
        try:
            async for item in stream:
                if isinstance(item, TierResult):
                    yield self._scored_result(answer, item)
                else:
                    payload = item.payload
                    answer.pieces.append((payload.text, list(payload.logprobs)))
                    yield item
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    def _scored_result(self, answer: TierAnswer, result: TierResult[D]) -> TierResult[D]:
        answer.confidence = result.confidence
        if answer.tier not in self._scored:
            return result
        features = answer_features(answer.pieces, prompt=self._prompt)
        features[CONFIDENCE_FEATURE] = result.confidence
        answer.features = features
        answer.score = self._scorer.escalation_score(answer.tier, features)
        return replace(result, score=answer.score) if self._attach else result
