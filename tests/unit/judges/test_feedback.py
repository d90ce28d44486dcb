"""Caller feedback becomes a verdict of the feedback judge."""

from __future__ import annotations

import math

import pytest

from tierroute.judges import JudgeInputError, verdict_from_feedback


def test_score_becomes_a_verdict() -> None:
    good = verdict_from_feedback(0.5)
    assert good.acceptable and good.decided and good.judge == "feedback"
    assert good.score == 0.5 and good.cost_usd == 0.0
    bad = verdict_from_feedback(0.2)
    assert not bad.acceptable and bad.score == 0.2


@pytest.mark.parametrize("score", [-0.1, 1.01, math.nan, math.inf])
def test_scores_outside_zero_to_one_are_refused(score: float) -> None:
    with pytest.raises(JudgeInputError) as caught:
        verdict_from_feedback(score)
    assert caught.value.field == "score"
