"""Canonical results of free-form answers, for comparing two answers rather than one with gold.

Numbers and letters come from :mod:`tierroute.answers` (the scoring of the offline evaluation,
so a judge and the gold scorer read an answer the same way). Added here:

- code: the last fenced block (a block left open at the end counts: an answer cut at the token
  limit), or the whole answer when it has no fence. Two blocks that both parse as Python
  compare by ``ast.dump`` (comments, blank lines, formatting and string quoting do not
  matter); otherwise by tokens after dropping comment lines (``#``, ``//``), blank lines and
  trailing whitespace.
- short answers: the text after the last "answer is" / "answer:" marker when there is one (else
  the whole text), lower-cased, with Markdown emphasis, punctuation, the articles a/an/the and
  extra whitespace removed; at most :data:`SHORT_ANSWER_WORDS` words, longer text is prose and
  has no canonical short answer.
"""

from __future__ import annotations

import ast
import re

from tierroute.answers import normalise_choice, normalise_number, states_number_after_code
from tierroute.judges.base import AnswerFormat

SHORT_ANSWER_WORDS = 8
"""Longest normalised text (in words) still taken as a short answer."""

PYTHON_FENCES = frozenset({"", "python", "python3", "py"})
"""Info strings of fenced blocks taken as Python (a bare fence included)."""

_ANSWER_MARKER = re.compile(r"answer\s*(?:is|:)", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMMENT_LINE = re.compile(r"^\s*(?:#|//)")
# A letter alone (``B``, ``(B)``, ``B.``) or an explicit "answer is B": only these read as a
# choice, since normalise_choice also takes a sentence's leading "A" for one.
_BARE_LETTER = re.compile(r"^\W*[A-J]\W*$")
_EXPLICIT_LETTER = re.compile(r"answer\s*(?:is|:)\s*(?:option\s*)?[(\[]?[A-J][)\].:,]?\s*$", re.I)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The ``(info string, contents)`` of each fenced block of ``text``, in order.

    A block still open at the end of the text counts (an answer cut at the token limit).
    """
    blocks: list[tuple[str, str]] = []
    current: list[str] | None = None
    info = ""
    for line in text.splitlines():
        fence = line.strip().startswith("```")
        if current is None and fence:
            current, info = [], line.strip()[3:].strip().lower()
        elif current is not None and fence:
            blocks.append((info, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        blocks.append((info, "\n".join(current) + "\n"))
    return blocks


def last_code_block(text: str) -> str | None:
    """The contents of the last fenced block of ``text``, or None when it has none."""
    blocks = fenced_blocks(text)
    return blocks[-1][1] if blocks else None


def normalise_code(code: str) -> str:
    """A canonical form of ``code``: its AST dump if it parses as Python, else its tokens."""
    try:
        return "ast:" + ast.dump(ast.parse(code))
    except (SyntaxError, ValueError):
        pass
    lines = [line.rstrip() for line in code.splitlines()]
    kept = [line for line in lines if line.strip() and not _COMMENT_LINE.match(line)]
    return "tokens:" + " ".join(_CODE_TOKEN.findall("\n".join(kept)))


def normalise_short(text: str) -> str | None:
    """The short answer of ``text`` (see the module docstring), or None for prose or nothing."""
    markers = list(_ANSWER_MARKER.finditer(text))
    tail = text[markers[-1].end() :] if markers else text
    cleaned = _PUNCTUATION.sub(" ", tail.lower().replace("_", " "))
    words = _ARTICLES.sub(" ", cleaned).split()
    if not words or len(words) > SHORT_ANSWER_WORDS:
        return None
    return " ".join(words)


def looks_like_choice(text: str) -> bool:
    """True when ``text`` is a bare letter or ends with an explicit "answer is (B)"."""
    stripped = text.strip()
    return bool(_BARE_LETTER.match(stripped) or _EXPLICIT_LETTER.search(stripped))


def infer_format(reference: str) -> AnswerFormat | None:
    """The format of the canonical result ``reference`` holds, in order of precedence.

    Code (a fenced block, unless the text after the last one states a numeric result: an
    answer worked out in code whose result is a number), a choice (a bare or explicit letter), a
    number (any number: the final one counts), a short answer; None for prose with none of
    these.
    """
    if fenced_blocks(reference):
        return "number" if states_number_after_code(reference) else "code"
    if looks_like_choice(reference):
        return "choice"
    if normalise_number(reference) is not None:
        return "number"
    if normalise_short(reference) is not None:
        return "short"
    return None


def canonical(text: str, answer_format: AnswerFormat) -> str | None:
    """The canonical result of ``text`` read as ``answer_format``, or None when it has none."""
    if answer_format == "number":
        return normalise_number(text)
    if answer_format == "choice":
        return normalise_choice(text)
    if answer_format == "code":
        # No fence: the whole answer is taken as the code (a plain completion).
        block = last_code_block(text)
        code = text if block is None else block
        return normalise_code(code) if code.strip() else None
    return normalise_short(text)
