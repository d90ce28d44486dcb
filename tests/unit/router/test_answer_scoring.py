"""The answer recorder: pieces kept per tier, cheaper tiers scored, the cascade comparing the
score with the tier's own threshold."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

from router_svc.answer_scoring import CONFIDENCE_FEATURE, AnswerRecorder
from router_svc.cascade import (
    Cascade,
    CascadePlan,
    Chunk,
    Escalation,
    FallbackModeName,
    Outcome,
    TierResult,
)


@dataclass(frozen=True)
class Piece:
    text: str
    logprobs: tuple[float, ...]


@dataclass
class FixedScorer:
    """Scores every answer ``value`` and keeps the features it was given."""

    value: float
    seen: list[Mapping[str, float]] = field(default_factory=list)

    def escalation_score(self, tier: str, features: Mapping[str, float]) -> float:
        self.seen.append(dict(features))
        return self.value


def stream(
    words: tuple[str, ...], confidence: float
) -> AsyncGenerator[Chunk[Piece] | TierResult[None], None]:
    async def go() -> AsyncGenerator[Chunk[Piece] | TierResult[None], None]:
        for word in words:
            yield Chunk(Piece(word, (-0.5,)), 1, confidence)
        yield TierResult(0, 5, len(words), confidence, None)

    return go()


async def test_a_cheaper_answer_is_kept_and_scored_and_the_largest_only_kept() -> None:
    scorer = FixedScorer(0.2)
    recorder = AnswerRecorder(scorer, frozenset({"small"}), "What is 2 + 2?")
    items = [i async for i in recorder.watch("small", stream(("The", " answer", " is 4."), 0.9))]
    result = items[-1]
    assert isinstance(result, TierResult)
    # The score travels beside the model's own confidence, which stays as it was.
    assert (result.confidence, result.score, result.escalation_score) == (0.9, 0.2, 0.2)
    answer = recorder.answers["small"]
    assert answer.text == "The answer is 4." and answer.finished and answer.score == 0.2
    assert answer.features is not None and answer.features[CONFIDENCE_FEATURE] == 0.9
    assert scorer.seen[0]["span_found"] == 1.0 and "prompt_digits" in scorer.seen[0]
    large = [i async for i in recorder.watch("large", stream(("4",), 0.8))]
    assert isinstance(large[-1], TierResult) and large[-1].score is None
    assert recorder.answers["large"].features is None and recorder.answers["large"].finished


def plan(thresholds: Mapping[str, float]) -> CascadePlan:
    return CascadePlan(
        tiers=("small", "large"),
        start=0,
        mode=FallbackModeName.BUFFERED,
        threshold=0.65,
        early_window_tokens=4,
        thresholds=thresholds,
    )


async def served(score: float, thresholds: Mapping[str, float]) -> tuple[str, list[Escalation]]:
    recorder = AnswerRecorder(FixedScorer(score), frozenset({"small"}), "q")

    def open_tier(tier: str) -> AsyncGenerator[Chunk[Piece] | TierResult[None], None]:
        # The model is confident (0.95) in every case: only the learned score decides.
        return recorder.watch(tier, stream(("a", "b"), 0.95))

    events = [e async for e in Cascade(plan(thresholds), open_tier).run()]
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    return outcome.served_tier, [e for e in events if isinstance(e, Escalation)]


async def test_the_cascade_compares_the_score_with_the_tiers_own_threshold() -> None:
    assert (await served(0.5, {"small": 0.4}))[0] == "small"
    tier, (escalation,) = await served(0.3, {"small": 0.4})
    assert tier == "large" and escalation.confidence_score == 0.3
    assert "escalation score 0.300 below the threshold 0.400" in escalation.reason
    # Without a per-tier threshold the plan's applies (0.65).
    assert (await served(0.5, {}))[0] == "large"


async def test_without_attaching_the_score_the_cascade_reads_the_confidence() -> None:
    recorder = AnswerRecorder(FixedScorer(0.1), frozenset({"small"}), "q", attach_score=False)
    items = [i async for i in recorder.watch("small", stream(("a",), 0.9))]
    result = items[-1]
    assert isinstance(result, TierResult) and result.escalation_score == 0.9
    # Still scored and kept for judging.
    assert recorder.answers["small"].score == 0.1
