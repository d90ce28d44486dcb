"""Caller feedback as a verdict: a caller's score 0..1 for a request it sent.

Not a :class:`~tierroute.judges.base.Judge` (nothing is computed: the caller has judged), but
the same :class:`~tierroute.judges.base.Verdict`, so feedback is stored and counted like any
other judgment. The caller's comment is never put in the verdict's reason (it is free text,
which may quote the prompt); the caller of this function stores it apart if at all.
"""

from __future__ import annotations

import math

from tierroute.judges.base import JudgeInputError, Verdict

NAME = "feedback"

ACCEPTABLE_FROM = 0.5
"""A score at or above this makes the answer acceptable."""


def verdict_from_feedback(score: float) -> Verdict:
    """The verdict a caller's ``score`` (0 = unacceptable .. 1 = fully acceptable) stands for."""
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise JudgeInputError("score", "must be a number in [0, 1]")
    acceptable = score >= ACCEPTABLE_FROM
    return Verdict(
        acceptable=acceptable,
        score=float(score),
        judge=NAME,
        reason=f"caller scored {score:.2f}",
    )
