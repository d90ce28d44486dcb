"""What every judge shares: the case it judges, the verdict it gives, the protocol, the errors.

A judge answers one question: was the cheaper tier's answer to this prompt acceptable? It may
use the largest tier's answer to the same prompt (the reference) when one exists, and material
the caller supplied (tests for code, a JSON schema). A judge that cannot tell says so
(``decided=False``) instead of guessing, so the caller can ask the next judge of its chain or
drop the sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tierroute.errors import ErrorKind, TierrouteError

AnswerFormat = Literal["number", "choice", "code", "short"]
"""What an answer's canonical result is: its final number, a letter A-J, its last code block,
or a short free-text answer (a name, a word, a phrase)."""

ANSWER_FORMATS: tuple[AnswerFormat, ...] = ("number", "choice", "code", "short")


class JudgeError(TierrouteError):
    """Base of every judging error (a judge that could not run, a malformed input)."""


class JudgeUnavailableError(JudgeError):
    """What a judge needs (the largest tier, the sandbox) could not be reached; may be retried."""

    kind = ErrorKind.UNAVAILABLE
    retryable = True


class JudgeInputError(JudgeError):
    """A caller-supplied input is malformed; ``field`` names it (e.g. ``score``, ``schema``)."""

    kind = ErrorKind.INVALID_ARGUMENT

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


@dataclass(frozen=True)
class JudgeCase:
    """One answer to judge, with what the judges may compare it to."""

    prompt: str
    """The user's message the answers respond to."""
    candidate: str
    """The cheaper tier's answer (the one being judged)."""
    reference: str | None = None
    """The largest tier's answer to the same prompt; None when there is none."""
    tests: str | None = None
    """Caller-supplied Python tests for the ``code`` judge: statements run after the answer's
    code in the same module (e.g. ``assert f(2) == 4``), passing when they raise nothing."""
    json_schema: Mapping[str, Any] | None = None
    """Caller-supplied JSON schema for the ``json_schema`` judge."""
    answer_format: AnswerFormat | None = None
    """What the task's canonical answer is, when the caller knows (offline task sets do); None:
    the ``agreement`` judge infers it from the reference."""


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one case."""

    acceptable: bool
    """The candidate answer is acceptable (only meaningful when ``decided``)."""
    score: float
    """P(acceptable) in [0, 1]; 0 or 1 for judges that decide by rule."""
    judge: str
    """Name of the judge that gave the verdict (``agreement``, ``llm``, ``code``, ...)."""
    reason: str
    """A short explanation; never holds prompt or answer text."""
    cost_usd: float = 0.0
    """What judging cost, US dollars (0 for local judges)."""
    decided: bool = True
    """False when the judge could not decide (nothing to compare or run); the caller then asks
    another judge or drops the sample."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"verdict score must be in [0, 1], got {self.score}")
        if not (math.isfinite(self.cost_usd) and self.cost_usd >= 0.0):
            raise ValueError(f"verdict cost must be >= 0, got {self.cost_usd}")


def undecided(judge: str, reason: str, cost_usd: float = 0.0) -> Verdict:
    """The verdict of a judge that could not tell (score 0.5, not acceptable)."""
    return Verdict(
        acceptable=False, score=0.5, judge=judge, reason=reason, cost_usd=cost_usd, decided=False
    )


def ruled(judge: str, acceptable: bool, reason: str) -> Verdict:
    """The verdict of a judge deciding by rule: score 1 or 0, no cost."""
    return Verdict(
        acceptable=acceptable, score=1.0 if acceptable else 0.0, judge=judge, reason=reason
    )


class Judge(Protocol):
    """Decides whether a cheaper tier's answer was acceptable."""

    @property
    def name(self) -> str:
        """The judge's name, as configured and as reported in verdicts."""
        ...

    async def judge(self, case: JudgeCase) -> Verdict:
        """The verdict on ``case``; ``decided=False`` when this judge cannot tell."""
        ...
