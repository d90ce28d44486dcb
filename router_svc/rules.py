"""Named routing rules: cheap heuristics that decide the obvious cases before the classifier.

Each rule looks at the prompt text only and either sends it to the largest tier (code and
requests to write code, maths, multi-step instructions, very long prompts) or to the cheapest
(greetings, very short factual questions). The first rule that matches wins; rules that send
to the largest tier are checked first, so a short question that contains code still goes to the
largest tier. The rule's name (``rule:<kind>``) is what metrics and ``Routed.reason`` report.
The authorised tier hint is not a rule here: it needs the caller's identity, so the router's
policy handles it.

Every pattern is compiled once per :class:`RuleSet` and is linear in the text length; the whole
evaluation takes microseconds for ordinary prompts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from tierroute.config import Section

Target = Literal["cheapest", "largest"]

LONG_PROMPT = "rule:long_prompt"
CODE_FENCE = "rule:code_fence"
CODE_LIKE = "rule:code_like"
MATH = "rule:math"
MULTI_STEP = "rule:multi_step"
GREETING = "rule:greeting"
SHORT_FACTUAL = "rule:short_factual"

# Evaluation order: every "largest" rule before any "cheapest" one (see the module docstring).
RULE_NAMES: tuple[str, ...] = (
    LONG_PROMPT,
    CODE_FENCE,
    CODE_LIKE,
    MATH,
    MULTI_STEP,
    GREETING,
    SHORT_FACTUAL,
)


class RulesSettings(Section):
    """Which rules run and their thresholds."""

    enabled: bool = True
    """Evaluate rules at all; when off, every request goes to the classifier."""
    disabled: frozenset[str] = frozenset()
    """Names of rules to skip, with or without the ``rule:`` prefix (e.g. ``greeting``)."""
    long_prompt_chars: int = Field(default=6000, gt=0)
    """Prompts at least this long (characters) go to the largest tier."""
    code_like_min_lines: int = Field(default=2, ge=1)
    """Lines that must look like code (keywords, braces, semicolons) for ``rule:code_like``
    (a request to write or fix code matches on its own)."""
    greeting_max_words: int = Field(default=6, ge=1)
    """Longest message (words) that ``rule:greeting`` may treat as a bare greeting."""
    short_question_max_words: int = Field(default=8, ge=1)
    """Longest question (words) that ``rule:short_factual`` sends to the cheapest tier."""
    multi_step_min_items: int = Field(default=3, ge=2)
    """Numbered or bulleted instruction lines that make a prompt ``rule:multi_step``."""

    @field_validator("disabled", mode="before")
    @classmethod
    def _normalise_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple | set | frozenset):
            return value
        names = set()
        for raw in value:
            name = str(raw).strip()
            name = name if name.startswith("rule:") else f"rule:{name}"
            if name not in RULE_NAMES:
                raise ValueError(f"unknown rule {raw!r}; known: {', '.join(RULE_NAMES)}")
            names.add(name)
        return frozenset(names)


@dataclass(frozen=True)
class RuleMatch:
    """The rule that decided a request and the tier it chose."""

    name: str
    """Rule name as reported in metrics and ``Routed.reason``, e.g. ``rule:code_fence``."""
    target: Target
    """``cheapest`` or ``largest`` tier of the configured chain."""


_CODE_FENCE = re.compile(r"```|~~~")
# A line "looks like code" when it starts with a statement keyword of a common language, or
# ends with a brace or semicolon, or is an assignment/call with operators programmers use.
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|function |fn |func |let |const |var |"
    r"public |private |static |return\b|for \(|while \(|if \(|SELECT |CREATE TABLE )"
    r"|[{};]\s*$"
    r"|^\s*[A-Za-z_][\w.]*\s*(?:=|\+=|-=|==|=>|->)\s*\S.*[()\[\]]",
    re.MULTILINE,
)
# A request to write or fix code is as hard for a small model as code itself.
_CODE_REQUEST = re.compile(
    r"\b(?:write|implement|develop|code|debug|refactor|fix)\b[^.?!\n]{0,60}?"
    r"(?:\b(?:python|javascript|typescript|java|rust|golang|sql|bash|shell script|"
    r"function|program|script|algorithm|regex|unit tests?)\b|\bc\+\+|\bc#)",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\b(?:prove|proof|theorem|lemma|corollary|derive|derivative|integral|integrate|"
    r"differentiate|eigen\w*|polynomial|equation|inequality|matrix|modulo)\b"
    r"|\\(?:frac|int|sum|sqrt|prod|lim|begin\{)|\$[^$\n]*[\\^_{}][^$\n]*\$|[∫∑∏√∞≤≥≠∀∃∈⊂]"
    r"|\b\d+\s*[a-z]\s*[+\-*/^]\s*\d|\b[a-z]\s*\^\s*\d",
    re.IGNORECASE,
)
_STEP_MARKER = re.compile(
    r"step[- ]by[- ]step|\bsteps?\s+\d|\bfirst\b.{0,200}\bthen\b.{0,200}\b(?:finally|lastly)\b",
    re.IGNORECASE | re.DOTALL,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+\S", re.MULTILINE)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day)|"
    r"thanks|thank you|thx|cheers|bye|goodbye|see you)\b(?:[\s,!.?]+"
    r"(?:there|all|everyone|friend|again|a lot|so much|very much|how are you(?: doing)?(?: today)?|"
    r"how's it going|what's up))*[\s!.?]*$",
    re.IGNORECASE,
)
_FACT_START = re.compile(
    r"^(?:who (?:is|was|wrote|invented|discovered|painted)|what (?:is|was|are) (?:the|a|an)"
    r"|when (?:is|was|did)|where (?:is|was|are)|which (?:is|was)|how many|how tall|"
    r"how far|what year|what's the)\b",
    re.IGNORECASE,
)
# Questions that ask for reasoning rather than a fact, however short.
_REASONING_WORD = re.compile(
    r"\b(?:why|explain|compare|difference|analy[sz]e|argue|should|opinion|write|design)\b",
    re.IGNORECASE,
)


class RuleSet:
    """The enabled rules, evaluated in a fixed order; see the module docstring."""

    def __init__(self, settings: RulesSettings) -> None:
        self._settings = settings
        checks: dict[str, tuple[Callable[[str], bool], Target]] = {
            LONG_PROMPT: (self._long_prompt, "largest"),
            CODE_FENCE: (self._code_fence, "largest"),
            CODE_LIKE: (self._code_like, "largest"),
            MATH: (self._math, "largest"),
            MULTI_STEP: (self._multi_step, "largest"),
            GREETING: (self._greeting, "cheapest"),
            SHORT_FACTUAL: (self._short_factual, "cheapest"),
        }
        self._active: tuple[tuple[RuleMatch, Callable[[str], bool]], ...] = (
            ()
            if not settings.enabled
            else tuple(
                (RuleMatch(name, checks[name][1]), checks[name][0])
                for name in RULE_NAMES
                if name not in settings.disabled
            )
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Every rule name, enabled or not (a bounded label set for metrics)."""
        return RULE_NAMES

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the rules that run, in evaluation order."""
        return tuple(match.name for match, _ in self._active)

    def evaluate(self, text: str) -> RuleMatch | None:
        """The first matching rule's decision, or ``None`` to let the classifier decide."""
        for match, check in self._active:
            if check(text):
                return match
        return None

    def _long_prompt(self, text: str) -> bool:
        return len(text) >= self._settings.long_prompt_chars

    @staticmethod
    def _code_fence(text: str) -> bool:
        return _CODE_FENCE.search(text) is not None

    def _code_like(self, text: str) -> bool:
        if _CODE_REQUEST.search(text) is not None:
            return True
        return _at_least(_CODE_LINE.finditer(text), self._settings.code_like_min_lines)

    @staticmethod
    def _math(text: str) -> bool:
        return _MATH.search(text) is not None

    def _multi_step(self, text: str) -> bool:
        if _STEP_MARKER.search(text) is not None:
            return True
        return _at_least(_LIST_ITEM.finditer(text), self._settings.multi_step_min_items)

    def _greeting(self, text: str) -> bool:
        stripped = text.strip()
        if len(stripped.split()) > self._settings.greeting_max_words:
            return False
        return _GREETING.match(stripped) is not None

    def _short_factual(self, text: str) -> bool:
        stripped = text.strip()
        if not stripped.endswith("?") or "\n" in stripped:
            return False
        if len(stripped.split()) > self._settings.short_question_max_words:
            return False
        return _FACT_START.match(stripped) is not None and not _REASONING_WORD.search(stripped)


def _at_least(matches: Iterator[re.Match[str]], needed: int) -> bool:
    """Whether ``matches`` yields ``needed`` items (stops early on long texts)."""
    return sum(1 for _ in itertools.islice(matches, needed)) >= needed
