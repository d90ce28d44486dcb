"""Locating an answer's final span: number, letter, code block, sentence."""

from __future__ import annotations

import pytest

from tierroute.answers import Span, final_span, normalise_choice, normalise_number


def _check(text: str, span: Span | None) -> Span:
    assert span is not None
    assert text[span.start : span.end] == span.text
    return span


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", "18"),
        ("The answer is 18.", "18"),
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("$1,000.50", "$1,000.50"),
        ("3 + 5 = 8", "8"),
        ("I think 7. Then 9", "9"),
        ("Answer: 42 because 6*7", "42"),
        ("x = 4, so y = 5", "5"),
        ("3-5", "5"),  # a hyphen after a digit is a minus, not a sign
        # the first number after the last marker wins, even when more working follows
        ("4 pens cost 4 * 3 = 12 dollars, so 12 pens cost 36.", "12"),
    ],
)
def test_number_span_is_the_number_normalise_reads(text: str, expected: str) -> None:
    span = _check(text, final_span(text, "number"))
    assert span.kind == "number"
    assert span.text.strip() == expected
    assert normalise_number(span.text) == normalise_number(text)


def test_number_after_marker_without_lookbehind_surprise() -> None:
    # "is5": read on its own the tail "5" is a number, as normalise_number reads it
    text = "the answer is5 not 7"
    span = _check(text, final_span(text, "number"))
    assert span.text == "5"
    assert normalise_number(text) == "5"


def test_no_number() -> None:
    assert final_span("no number here", "number") is None
    assert final_span("", "number") is None


@pytest.mark.parametrize(
    ("text", "letter"),
    [("B", "B"), ("(C) because", "C"), ("I pick A. The answer is (D).", "D"), ("answer: b", "b")],
)
def test_choice_span(text: str, letter: str) -> None:
    span = _check(text, final_span(text, "choice"))
    assert span.kind == "choice"
    assert span.text == letter
    assert normalise_choice(text) == letter.upper()


def test_code_span_is_the_last_block() -> None:
    text = "First:\n```python\nx = 1\n```\nBetter:\n```python\ndef f():\n    return 2\n```\nDone."
    span = _check(text, final_span(text, "code"))
    assert span.kind == "code"
    assert span.text == "def f():\n    return 2"


def test_code_block_left_open_counts() -> None:
    text = "```python\nx = 1\n```\n```python\ndef f():\n    return"
    span = _check(text, final_span(text, "code"))
    assert span.text == "def f():\n    return"


def test_no_code_block() -> None:
    assert final_span("just words, 3 of them", "code") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris is big. The capital is Paris.", "The capital is Paris."),
        ("One line\nSecond line!  \n", "Second line!"),
        ("Pi is 3.14 roughly.", "Pi is 3.14 roughly."),
        ("Hello", "Hello"),
    ],
)
def test_sentence_span(text: str, expected: str) -> None:
    span = _check(text, final_span(text, "sentence"))
    assert span.kind == "sentence"
    assert span.text == expected


def test_blank_text_has_no_sentence() -> None:
    assert final_span("  \n ", "sentence") is None
    assert final_span("", None) is None


def test_auto_prefers_code_then_number_then_sentence() -> None:
    code = "Here:\n```python\nreturn 3\n```\nThe result is 4."
    assert _check(code, final_span(code)).kind == "code"
    number = "So 7 times 8 is 56. Hope that helps."
    span = _check(number, final_span(number))
    assert (span.kind, span.text) == ("number", "56")
    words = "I cannot say. Sorry about that."
    span = _check(words, final_span(words))
    assert (span.kind, span.text) == ("sentence", "Sorry about that.")


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown span kind"):
        final_span("1", "letter")  # type: ignore[arg-type]


def test_a_number_stated_after_the_code_is_the_result() -> None:
    text = "```python\nprint(40 // 5)\n```\n```output\n8\n```\nSo the answer is 8 stickers."
    span = final_span(text)
    assert span is not None and span.kind == "number" and span.text.strip() == "8"
    assert span.start > text.rindex("```")
    assert normalise_number(text) == "8"
    # The code's own assignments are no answer once a result is stated after the code.
    assert normalise_number("```python\nx = 40\nprint(x // 5)\n```\nThe answer is 8.") == "8"
    # Prose after the code that states no result leaves the code as the result.
    plain = "```python\nprint(40 // 5)\n```\nIt divides 40 by 5."
    code = final_span(plain)
    assert code is not None and code.kind == "code"
