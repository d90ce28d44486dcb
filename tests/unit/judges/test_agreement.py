"""The agreement judge: final numbers, letters, short answers and code blocks compared."""

from __future__ import annotations

import pytest

from tierroute.judges import AgreementJudge, JudgeCase
from tierroute.judges.base import AnswerFormat
from tierroute.judges.normalise import (
    canonical,
    infer_format,
    last_code_block,
    normalise_code,
    normalise_short,
)

JUDGE = AgreementJudge()


async def _judge(
    candidate: str, reference: str | None, answer_format: AnswerFormat | None = None
) -> tuple[bool, bool]:
    verdict = await JUDGE.judge(JudgeCase("q", candidate, reference, answer_format=answer_format))
    assert verdict.judge == "agreement" and verdict.cost_usd == 0.0
    assert verdict.score == (1.0 if verdict.acceptable else (0.5 if not verdict.decided else 0.0))
    return verdict.decided, verdict.acceptable


@pytest.mark.parametrize(
    ("candidate", "reference", "acceptable"),
    [
        ("7", "3 + 4 = 7, so the answer is 7", True),
        ("The answer is **7**.", "7", True),
        ("First 3 + 4 = 7. Then 7 * 2 = 14.\n\nAnswer: 14", "14", True),
        ("$1,000.50", "It costs 1000.5 dollars", True),
        ("3 + 4 = 8", "3 + 4 = 7, so the answer is 7", False),
        ("I think it is 12 (3 * 4).", "7", False),
        ("(B)", "The answer is B", True),
        ("Answer: C", "B", False),
        ("The Eiffel Tower.", "the eiffel tower", True),
        ("Paris", "The answer is: Paris!", True),
        ("Lyon", "Paris", False),
    ],
)
async def test_final_results_compared(candidate: str, reference: str, acceptable: bool) -> None:
    assert await _judge(candidate, reference) == (True, acceptable)


async def test_candidate_without_a_result_is_not_acceptable() -> None:
    assert await _judge("I am not sure.", "7") == (True, False)
    assert await _judge("no code here, sorry", "```python\nx = 1\n```") == (True, False)


async def test_undecided_without_reference_or_canonical_result() -> None:
    assert await _judge("7", None) == (False, False)
    prose = (
        "Photosynthesis turns light into chemical energy stored in sugars, which plants use "
        "to grow, and it releases oxygen as a by-product."
    )
    assert await _judge("Plants make sugar from light.", prose) == (False, False)
    # The caller says numbers, and neither answer has one.
    assert await _judge("no idea", "cannot tell", "number") == (False, False)


async def test_format_hint_overrides_inference() -> None:
    # Read as a short answer these differ; as numbers they agree.
    assert await _judge("It is 7 apples", "seven, i.e. 7", "number") == (True, True)
    assert await _judge("It is 7 apples", "seven, i.e. 7", "short") == (True, False)


async def test_code_blocks_compare_after_normalisation() -> None:
    reference = "Use this:\n```python\ndef f(x):\n    # double it\n    return x * 2\n```\n"
    same = "```py\ndef f(x):\n\n    return x*2   \n```"
    other = "```python\ndef f(x):\n    return x + x\n```"
    assert await _judge(same, reference) == (True, True)
    assert await _judge(other, reference) == (True, False)
    # Not Python: token-wise, comments, blank lines and trailing spaces ignored.
    js = "```js\n// add\nfunction f(a){ return a+1; }\n```"
    js_same = "```js\nfunction f(a){\n\n  return a + 1;   \n}\n```"
    assert await _judge(js_same, js) == (True, True)


def test_normalisation_helpers() -> None:
    assert last_code_block("```a\nx\n```\ntext\n```b\ny\n```") == "y\n"
    assert last_code_block("cut short:\n```python\ndef f(") == "def f(\n"
    assert last_code_block("no fence") is None
    assert normalise_code("x = 1  # one\n") == normalise_code("x=1\n")
    assert normalise_code("x = 'a'") == normalise_code('x = "a"')
    assert normalise_short("The answer is: The Beatles.") == "beatles"
    assert normalise_short("An  APPLE!") == "apple"
    assert normalise_short(" ".join(["word"] * 20)) is None
    assert infer_format("```\ncode\n```") == "code"
    assert infer_format("(C)") == "choice"
    assert infer_format("A man walked 3 miles.") == "number"  # a leading "A" is no choice
    assert infer_format("London") == "short"
    assert canonical("2 + 2 = 4", "number") == "4"
    assert canonical("def f(): pass", "code") == canonical("```\ndef f():\n    pass\n```", "code")


WORKED_IN_CODE = (
    "Let me compute it.\n```python\ntotal = 40\nprint(total // 5)\n```\n```output\n8\n```\n"
    "Each friend gets \\(\\boxed{8}\\) stickers."
)


async def test_a_result_worked_out_in_code_is_compared_as_its_stated_number() -> None:
    # The reference computes in code, then states its result: the number is the result, so a
    # candidate that reaches the same number by prose agrees (and a different number does not).
    assert infer_format(WORKED_IN_CODE) == "number"
    same = "40 / 5 = 8, so each friend gets \\(\\boxed{8}\\) stickers."
    assert await _judge(same, WORKED_IN_CODE) == (True, True)
    assert await _judge("40 / 5 = 9", WORKED_IN_CODE) == (True, False)


async def test_code_followed_by_prose_without_a_stated_result_is_still_code() -> None:
    reference = "```python\ndef add(a, b):\n    return a + b\n```\nThis adds the 2 numbers."
    assert infer_format(reference) == "code"
    assert await _judge("```python\ndef add(a, b):\n    return b + a\n```", reference) == (
        True,
        False,
    )
