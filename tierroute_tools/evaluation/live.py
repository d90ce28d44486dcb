"""Live evaluation: prompts sent through a running router, one *arm* at a time, and scored.

The router's tiers form an ordered chain, cheapest first (``small``, ``large``; or ``tiny``,
``small``, ``large``). An arm is a way of asking the router:

- one arm per tier, named after it: pinned to that tier, fallback disabled (what the tier alone
  answers); the last tier's arm is the baseline (always-large);
- ``tierroute``: no pin, the router's own policy (rules, classifier) and cascade;
- ``cascade``: pinned to the cheapest tier with the buffered cascade (escalate along the chain
  on low confidence), which isolates the confidence fallback from the pre-routing.

Each answer is scored by a :class:`Scorer`: exact match against a gold answer
(:mod:`.answers`) or, for code tasks, running the task's tests in a sandbox
(:mod:`.tasks`). It is kept as a :class:`LiveRecord` with the routing facts
the router returned: tiers, escalations, confidence with its raw statistics, tokens and cost.
Greedy decoding (the model services' default temperature 0) makes each tier's answer to a
prompt the same in every arm.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tierroute.answers import ANSWER_KINDS, AnswerKind, is_correct, normalise
from tierroute.client import Completion, Router, RouterError

SMALL = "small"
LARGE = "large"
TIERROUTE = "tierroute"
CASCADE = "cascade"
ARM_NAMES: tuple[str, ...] = (SMALL, LARGE, TIERROUTE, CASCADE)
CODE = "code"
"""Kind of an item scored by running its task's tests (no gold answer text)."""


@dataclass(frozen=True)
class LiveItem:
    """One prompt with its gold answer (a row of the live-task JSONL)."""

    id: str
    prompt: str
    answer: str
    kind: AnswerKind | str
    """``number`` or ``choice`` (exact match); ``code`` (scored by execution, ``answer`` empty)."""
    source: str = ""

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> LiveItem:
        """Parse one row; raises ``ValueError`` when a field is missing or malformed."""
        try:
            kind = row["kind"]
            item = cls(
                id=str(row["id"]),
                prompt=str(row["prompt"]),
                answer=str(row["answer"]),
                kind=kind,
                source=str(row.get("source", "")),
            )
        except KeyError as exc:
            raise ValueError(f"live item lacks {exc}") from exc
        if kind not in ANSWER_KINDS:
            raise ValueError(f"live item {item.id}: kind must be one of {ANSWER_KINDS}")
        if normalise(item.answer, kind) is None:
            raise ValueError(f"live item {item.id}: gold answer {item.answer!r} is not a {kind}")
        return item

    def to_json(self) -> dict[str, str]:
        """The JSONL row."""
        return asdict(self)


def read_items(path: Path) -> list[LiveItem]:
    """Items of a JSONL file; ids must be unique."""
    with path.open(encoding="utf-8") as handle:
        items = [LiveItem.from_json(json.loads(line)) for line in handle if line.strip()]
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: item ids are not unique")
    return items


def write_items(path: Path, items: Iterable[LiveItem]) -> None:
    """Write items as JSONL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class Arm:
    """How the prompts are sent: tier pin, fallback mode, fallback threshold override."""

    name: str
    tier: str | None
    fallback_mode: str | None
    fallback_threshold: float | None = None


def chain_arms(tiers: Sequence[str], fallback_threshold: float | None = None) -> dict[str, Arm]:
    """One pinned arm per tier, then ``tierroute`` and ``cascade`` (see the module docstring).

    ``tiers`` is the chain, cheapest first; the threshold overrides the router's.
    """
    if len(tiers) < 2 or len(set(tiers)) != len(tiers):
        raise ValueError("the chain needs at least two distinct tiers")
    clash = {TIERROUTE, CASCADE} & set(tiers)
    if clash:
        raise ValueError(f"a tier may not be named {', '.join(sorted(clash))}")
    arms = {tier: Arm(tier, tier, "disabled") for tier in tiers}
    arms[TIERROUTE] = Arm(TIERROUTE, None, None, fallback_threshold)
    arms[CASCADE] = Arm(CASCADE, tiers[0], "buffered", fallback_threshold)
    return arms


def default_arms(
    small_tier: str = SMALL, large_tier: str = LARGE, fallback_threshold: float | None = None
) -> dict[str, Arm]:
    """The four arms of a two-tier chain (pinned small, pinned large, tierroute, cascade)."""
    return chain_arms((small_tier, large_tier), fallback_threshold)


@dataclass(frozen=True)
class LiveRecord:
    """One item answered by one arm, scored, with the router's facts."""

    item_id: str
    arm: str
    source: str
    gold: str
    text: str
    answer: str | None
    correct: bool
    error: str | None = None
    status: str | None = None
    """How the scorer judged: ``passed``/``failed``/``timeout``/... for code; ``None`` otherwise."""
    score_seconds: float = 0.0
    sandbox_isolation: str | None = None
    """Code only: the isolation the answer was scored under (see :class:`Score`)."""
    routed_tier: str = ""
    reason: str = ""
    classifier_score: float | None = None
    served_tier: str = ""
    escalated: bool = False
    escalation_confidence: float | None = None
    """The confidence that triggered the (first) escalation: the small tier's, when escalated."""
    escalation_cause: str | None = None
    """Why the (first) escalation happened: ``low_confidence``, ``early_window``, ``tier_error``."""
    escalations: list[dict[str, Any]] = field(default_factory=list)
    """Every hop along the chain: ``from_tier``, ``to_tier``, ``cause``, ``confidence``."""
    confidence: float | None = None
    """Confidence of the served answer."""
    stats: dict[str, float] = field(default_factory=dict)
    """Raw statistics of the served answer's confidence (mean_logprob, min_window_logprob, ...)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tier_usage: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    latency_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSONL row."""
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> LiveRecord:
        """Inverse of :meth:`to_json`."""
        return cls(**dict(row))


def read_records(path: Path) -> list[LiveRecord]:
    """Records of a JSONL file written by :func:`write_records`."""
    with path.open(encoding="utf-8") as handle:
        return [LiveRecord.from_json(json.loads(line)) for line in handle if line.strip()]


def write_records(path: Path, records: Iterable[LiveRecord]) -> None:
    """Write records as JSONL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one answer."""

    correct: bool
    answer: str | None = None
    """The normalised answer (exact match); ``None`` for code."""
    status: str | None = None
    seconds: float = 0.0
    isolation: str | None = None
    """Code only: the sandbox isolation that applied, ``"<network>,<user>"``, followed by
    ``" below-default:<missing>"`` when it ran under the opt-out of the minimum."""


class Scorer(Protocol):
    """Judges the text a tier answered to an item."""

    async def score(self, item: LiveItem, text: str) -> Score:
        """The verdict (must not block the event loop for long)."""
        ...


class ExactMatch:
    """Exact match of the normalised final answer against the item's gold answer."""

    async def score(self, item: LiveItem, text: str) -> Score:
        """See :func:`tierroute.answers.is_correct`."""
        if item.kind not in ANSWER_KINDS:
            raise ValueError(f"item {item.id}: exact match cannot score kind {item.kind!r}")
        kind: AnswerKind = "number" if item.kind == "number" else "choice"
        return Score(is_correct(text, item.answer, kind), normalise(text, kind))


def record_of(
    item: LiveItem, arm: Arm, completion: Completion, seconds: float, score: Score
) -> LiveRecord:
    """Keep one scored completion with its routing facts."""
    finished = completion.finished
    raw = finished.raw
    confidence = raw.confidence
    return LiveRecord(
        item_id=item.id,
        arm=arm.name,
        source=item.source,
        gold=item.answer,
        text=completion.text,
        answer=score.answer,
        correct=score.correct,
        status=score.status,
        score_seconds=score.seconds,
        sandbox_isolation=score.isolation,
        routed_tier=completion.routed.tier,
        reason=completion.routed.reason,
        classifier_score=completion.routed.classifier_score,
        served_tier=finished.tier,
        escalated=finished.escalated,
        escalation_confidence=(
            completion.escalations[0].confidence if completion.escalations else None
        ),
        escalation_cause=completion.escalations[0].cause if completion.escalations else None,
        escalations=[
            {
                "from_tier": e.from_tier,
                "to_tier": e.to_tier,
                "cause": e.cause,
                "confidence": e.confidence,
            }
            for e in completion.escalations
        ],
        confidence=finished.confidence,
        stats={
            "mean_logprob": confidence.mean_logprob,
            "min_logprob": confidence.min_logprob,
            "min_window_logprob": confidence.min_window_logprob,
            "low_prob_fraction": confidence.low_prob_fraction,
            "token_count": float(confidence.token_count),
        },
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        tier_usage=[
            {
                "tier": usage.tier,
                "prompt_tokens": usage.usage.prompt_tokens,
                "completion_tokens": usage.usage.completion_tokens,
                "cost_usd": usage.cost_usd,
                "discarded": usage.discarded,
            }
            for usage in raw.tier_usage
        ],
        cost_usd=finished.cost_usd,
        baseline_cost_usd=finished.baseline_cost_usd,
        latency_seconds=seconds,
    )


@dataclass(frozen=True)
class Sampling:
    """Decoding of every request (greedy unless the model services are told otherwise)."""

    max_tokens: int = 16
    stop: tuple[str, ...] = ("\n",)
    timeout_seconds: float = 300.0


async def run_arm(
    router: Router,
    items: Sequence[LiveItem],
    arm: Arm,
    *,
    sampling: Sampling = Sampling(),
    concurrency: int = 4,
    scorer: Scorer | None = None,
    on_done: Callable[[LiveRecord], None] | None = None,
) -> list[LiveRecord]:
    """Send every item through ``router`` as ``arm``; records in item order.

    A failed request is recorded with its error and scored wrong, so a flaky tier shows up in
    the report instead of silently shrinking the sample. Scoring happens outside the
    concurrency gate, so a slow scorer (a sandbox run) does not hold a request slot.
    """
    judge = scorer if scorer is not None else ExactMatch()
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(item: LiveItem) -> LiveRecord:
        completion: Completion | None = None
        async with gate:
            started = time.monotonic()
            try:
                completion = await router.complete(
                    item.prompt,
                    max_tokens=sampling.max_tokens,
                    stop=sampling.stop,
                    fallback_mode=arm.fallback_mode,
                    tier=arm.tier,
                    fallback_threshold=arm.fallback_threshold,
                    timeout=sampling.timeout_seconds,
                )
            except RouterError as exc:
                record = LiveRecord(
                    item_id=item.id,
                    arm=arm.name,
                    source=item.source,
                    gold=item.answer,
                    text="",
                    answer=None,
                    correct=False,
                    error=str(exc),
                    latency_seconds=time.monotonic() - started,
                )
            seconds = time.monotonic() - started
        if completion is not None:
            score = await judge.score(item, completion.text)
            record = record_of(item, arm, completion, seconds, score)
        if on_done is not None:
            on_done(record)
        return record

    return list(await asyncio.gather(*(one(item) for item in items)))
