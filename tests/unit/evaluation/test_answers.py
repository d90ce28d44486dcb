"""The live scorer's answer normalisation."""

from __future__ import annotations

import pytest

from tierroute.answers import is_correct, normalise_choice, normalise_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", "18"),
        (" 18\n", "18"),
        ("The answer is 18.", "18"),
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("#### 1,000", "1000"),
        ("$1,000.50", "1000.5"),
        ("12.0", "12"),
        ("-3", "-3"),
        ("\u22123", "-3"),
        ("3 + 5 = 8", "8"),
        ("I think 7. Then 9", "9"),
        ("Answer: 42 because 6*7", "42"),
        ("x = 4, so y = 5", "5"),
        (".5", "0.5"),
        ("3-5", "5"),
        ("no number here", None),
        ("", None),
    ],
)
def test_number(text: str, expected: str | None) -> None:
    assert normalise_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("B. Paris", "B"),
        ("D)", "D"),
        ("The answer is (D).", "D"),
        ("Answer: a", "A"),
        ("I believe the answer is C", "C"),
        ("Option B", "B"),
        ("none of these", None),
        ("", None),
    ],
)
def test_choice(text: str, expected: str | None) -> None:
    assert normalise_choice(text) == expected


def test_is_correct() -> None:
    assert is_correct(" 1,200", "1200", "number")
    assert not is_correct("120", "1200", "number")
    assert not is_correct("", "0", "number")
    assert is_correct("The answer is (b)", "B", "choice")
    assert not is_correct("A", "B", "choice")
    with pytest.raises(ValueError, match="kind"):
        is_correct("1", "1", "word")  # type: ignore[arg-type]
