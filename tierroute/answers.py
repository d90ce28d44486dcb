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

:func:`final_span` locates, in character offsets, the part of an answer that carries its result
(the final number, the chosen letter, the last fenced code block, else the final sentence), so
confidence statistics can be taken over that span alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    found = _final_number(text)
    return _canonical(text[found[0] : found[1]]) if found else None


def _final_number(text: str) -> tuple[int, int] | None:
    """Offsets of the number :func:`normalise_number` reads: the first after the last marker,
    else the last in the text. When the text works its answer out in code and then states the
    result (:func:`states_number_after_code`), only the statement is read: the code's own
    ``x = 40`` is no answer."""
    tail = _stated_tail(text)
    if tail is not None:
        found = _number_in(text[tail:])
        return (tail + found[0], tail + found[1]) if found else None
    return _number_in(text)


def _number_in(text: str) -> tuple[int, int] | None:
    markers = list(_MARKER.finditer(text))
    if markers:
        start = markers[-1].end()
        # Search the slice, not text from ``start``: the pattern's look-behind must not see
        # the marker's last character, exactly as when the tail is read on its own.
        match = _NUMBER.search(text[start:])
        if match:
            return start + match.start(), start + match.end()
    numbers = list(_NUMBER.finditer(text))
    return (numbers[-1].start(), numbers[-1].end()) if numbers else None


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
    found = _final_choice(text)
    return text[found[0] : found[1]].upper() if found else None


def _final_choice(text: str) -> tuple[int, int] | None:
    """Offsets of the letter :func:`normalise_choice` reads."""
    explicit = list(_EXPLICIT_CHOICE.finditer(text))
    if explicit:
        return explicit[-1].start(1), explicit[-1].end(1)
    leading = _LEADING_CHOICE.match(text)
    return (leading.start(1), leading.end(1)) if leading else None


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


SpanKind = Literal["number", "choice", "code", "sentence"]
SPAN_KINDS: tuple[SpanKind, ...] = ("number", "choice", "code", "sentence")

_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
# An explicit statement of the result: a typeset box or an answer marker. Only these (not any
# number) make prose after a code block the answer's result: explanations mention numbers too.
_STATED_RESULT = re.compile(r"\\boxed\{|####|answer\s*(?:is|:)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+|\n\s*")


@dataclass(frozen=True)
class Span:
    """Where an answer's result sits: ``text[start:end] == span.text``."""

    kind: SpanKind
    start: int
    end: int
    text: str


def final_span(text: str, kind: SpanKind | None = None) -> Span | None:
    """The span of ``text`` that carries its final result, or None when there is none.

    ``kind`` asks for one kind: ``number`` (the number :func:`normalise_number` reads),
    ``choice`` (the letter :func:`normalise_choice` reads), ``code`` (the contents of the last
    fenced block; a block left open at the end counts) or ``sentence`` (the final sentence).
    ``None`` takes the first that exists of: the last code block, the final number, the final
    sentence (a letter is only looked for when asked: a stray capital is no answer).
    """
    if kind is not None and kind not in SPAN_KINDS:
        raise ValueError(f"unknown span kind {kind!r}; use one of {SPAN_KINDS}")
    order: tuple[SpanKind, ...] = (kind,) if kind is not None else ("code", "number", "sentence")
    if kind is None and states_number_after_code(text):
        order = ("number", "code", "sentence")
    for wanted in order:
        found = _FINDERS[wanted](text)
        if found is not None:
            return Span(wanted, found[0], found[1], text[found[0] : found[1]])
    return None


def states_number_after_code(text: str) -> bool:
    """True when, after its last fenced block, ``text`` states a numeric result explicitly.

    An answer that works a question out in code and then says "each friend gets \\boxed{8}"
    (or "the answer is 8", "#### 8") carries its result in that number, not in the code; an
    answer that ends with its code block (or with prose that states no result) carries it in
    the code. A block left open at the end is the end of the answer: nothing follows it.
    """
    return _stated_tail(text) is not None


def _stated_tail(text: str) -> int | None:
    """Offset of the text after the last (closed) fenced block when it states a numeric result."""
    fences = list(_FENCE.finditer(text))
    if not fences or len(fences) % 2:
        return None
    newline = text.find("\n", fences[-1].end())
    if newline < 0:
        return None
    tail = text[newline + 1 :]
    if _STATED_RESULT.search(tail) and _number_in(tail) is not None:
        return newline + 1
    return None


def _last_code_block(text: str) -> tuple[int, int] | None:
    """Offsets of the last fenced block's contents (between the fence lines)."""
    fences = list(_FENCE.finditer(text))
    if not fences:
        return None
    # Fences pair up in order: opening, closing, opening, ...; an odd one out is a block left
    # open at the end of the text (an answer cut at its token limit).
    opening = fences[-1] if len(fences) % 2 else fences[-2]
    closing = None if len(fences) % 2 else fences[-1]
    newline = text.find("\n", opening.end())
    if newline < 0:
        return None
    start = newline + 1
    end = closing.start() if closing else len(text.rstrip())
    if end > start and text[end - 1] == "\n":
        end -= 1  # the newline before the closing fence belongs to the fence
    return (start, end) if end > start else None


def _final_sentence(text: str) -> tuple[int, int] | None:
    """Offsets of the last sentence (or line) that has any text."""
    end = len(text.rstrip())
    if end == 0:
        return None
    start = 0
    for boundary in _SENTENCE_END.finditer(text, 0, end):
        start = boundary.end()
    while start < end and text[start].isspace():
        start += 1
    return start, end


_FINDERS = {
    "number": _final_number,
    "choice": _final_choice,
    "code": _last_code_block,
    "sentence": _final_sentence,
}
