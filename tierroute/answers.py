"""Scoring a free-form answer against a gold answer: exact match on a normalised final answer.

Two kinds of gold answer:

- ``number``: the answer's final number. If the text marks its answer (``####``, ``answer is``,
  ``answer:``, ``=``), the first number after the last marker counts; otherwise the last number
  in the text. Thousands separators, currency signs and trailing zeros after a decimal point are
  ignored, so ``$1,000.50`` and ``1000.5`` match. A hyphen or a Unicode minus sign (U+2212)
  before a number makes it negative.
- ``choice``: a letter (A-J). Explicit forms win (``answer is (B)``, ``Answer: B``); otherwise a
  letter standing alone at the start (``B``, ``(B)``, ``B.``, ``B)``).

A text with no usable answer scores wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Literal

AnswerKind = Literal["number", "choice"]
ANSWER_KINDS: tuple[AnswerKind, ...] = ("number", "choice")

_MINUS = "\u2212"  # Unicode minus sign, common in typeset answers
_NUMBER = re.compile(rf"(?<![\w.])[-{_MINUS}]?\$?\s?\d[\d,]*(?:\.\d+)?|(?<![\w.])[-{_MINUS}]?\.\d+")
_MARKER = re.compile(r"####|answer\s*(?:is|:)|=", re.IGNORECASE)
_EXPLICIT_CHOICE = re.compile(
    r"answer\s*(?:is|:)?\s*(?:option\s*)?[(\[]?([A-J])[)\].:,]?(?![A-Za-z])", re.IGNORECASE
)
_LEADING_CHOICE = re.compile(r"^\s*(?i:option\s*)?[(\[]?([A-J])(?:[)\].:,]|\s|$)")


def normalise_number(text: str) -> str | None:
    """The final number of ``text`` in canonical form (``"1,000.50"`` → ``"1000.5"``), or None."""
    tail = text
    markers = list(_MARKER.finditer(text))
    if markers:
        after = text[markers[-1].end() :]
        if _NUMBER.search(after):
            tail = after
            match = _NUMBER.search(after)
            assert match is not None
            return _canonical(match.group(0))
    numbers = _NUMBER.findall(tail)
    return _canonical(numbers[-1]) if numbers else None


def _canonical(raw: str) -> str | None:
    cleaned = raw.replace(_MINUS, "-").replace("$", "").replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def normalise_choice(text: str) -> str | None:
    """The chosen letter (upper case) of ``text``, or None."""
    explicit = _EXPLICIT_CHOICE.findall(text)
    if explicit:
        return str(explicit[-1]).upper()
    leading = _LEADING_CHOICE.match(text)
    return leading.group(1).upper() if leading else None


def normalise(text: str, kind: AnswerKind) -> str | None:
    """The normalised answer of ``text`` for a gold answer of ``kind``."""
    if kind == "number":
        return normalise_number(text)
    if kind == "choice":
        return normalise_choice(text)
    raise ValueError(f"unknown answer kind {kind!r}; use one of {ANSWER_KINDS}")


def is_correct(text: str, gold: str, kind: AnswerKind) -> bool:
    """Exact match of the normalised answer and the normalised gold."""
    answer = normalise(text, kind)
    expected = normalise(gold, kind)
    return answer is not None and answer == expected
