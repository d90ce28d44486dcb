"""The llm judge: P(yes) from one token's log-probability, asked through a fake tier."""

from __future__ import annotations

import math

import pytest

from tierroute.judges import (
    DEFAULT_TEMPLATE,
    AskResult,
    JudgeCase,
    JudgeUnavailableError,
    LlmJudge,
    p_yes,
)


class FakeTier:
    """Records the questions and answers with a scripted result."""

    def __init__(self, result: AskResult | Exception) -> None:
        self.result = result
        self.questions: list[str] = []

    async def __call__(self, prompt: str) -> AskResult:
        self.questions.append(prompt)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_p_yes_rules() -> None:
    # Generated "Yes" alone: its probability.
    assert p_yes(AskResult("Yes", math.log(0.8))) == pytest.approx(0.8)
    # Generated "No" alone: 1 - P(no), the documented approximation.
    assert p_yes(AskResult(" No", math.log(0.7))) == pytest.approx(0.3)
    # Both seen: renormalised over the two answers; variants of a word add up.
    both = AskResult("Yes", math.log(0.6), {"No": math.log(0.2), " yes": math.log(0.1)})
    assert p_yes(both) == pytest.approx(0.7 / 0.9)
    # No log-probability: the word itself decides.
    assert p_yes(AskResult("no.", None)) == 0.0
    assert p_yes(AskResult("YES", None)) == 1.0
    # Neither word anywhere: nothing to go on.
    assert p_yes(AskResult("Maybe", math.log(0.9), {"Perhaps": math.log(0.05)})) is None


async def test_judge_asks_the_template_and_thresholds_at_one_half() -> None:
    tier = FakeTier(AskResult("Yes", math.log(0.9), cost_usd=0.0004))
    judge = LlmJudge(tier)
    verdict = await judge.judge(JudgeCase("What is 2+2?", "4", "2 + 2 = 4"))
    assert verdict.decided and verdict.acceptable
    assert verdict.score == pytest.approx(0.9)
    assert verdict.cost_usd == pytest.approx(0.0004)
    assert verdict.judge == "llm" and "What is 2+2?" not in verdict.reason
    assert tier.questions == [
        DEFAULT_TEMPLATE.format(question="What is 2+2?", reference="2 + 2 = 4", candidate="4")
    ]
    unsure = LlmJudge(FakeTier(AskResult("No", math.log(0.55))))
    low = await unsure.judge(JudgeCase("q", "a", "r"))
    assert low.decided and not low.acceptable and low.score == pytest.approx(0.45)


async def test_without_reference_the_other_template_is_used() -> None:
    tier = FakeTier(AskResult("Yes", math.log(0.99)))
    judge = LlmJudge(tier, template_no_reference="Q={question} A={candidate}?")
    verdict = await judge.judge(JudgeCase("hi {there}", "hello"))
    assert verdict.acceptable
    assert tier.questions == ["Q=hi {there} A=hello?"]  # braces in text are not re-parsed


async def test_undecided_when_the_tier_says_neither_and_cost_still_counted() -> None:
    judge = LlmJudge(FakeTier(AskResult("The", math.log(0.5), cost_usd=0.001)))
    verdict = await judge.judge(JudgeCase("q", "a", "r"))
    assert not verdict.decided and verdict.cost_usd == pytest.approx(0.001)


async def test_transport_errors_become_judge_errors() -> None:
    judge = LlmJudge(FakeTier(ConnectionError("tier down")))
    with pytest.raises(JudgeUnavailableError) as caught:
        await judge.judge(JudgeCase("q", "a", "r"))
    assert caught.value.retryable


def test_templates_are_checked() -> None:
    tier = FakeTier(AskResult("Yes", 0.0))
    with pytest.raises(ValueError, match="fields"):
        LlmJudge(tier, template="{question} {candidate}")
    with pytest.raises(ValueError, match="fields"):
        LlmJudge(tier, template_no_reference="{question} {reference} {candidate}")
    with pytest.raises(ValueError, match="threshold"):
        LlmJudge(tier, threshold=1.0)
