"""The ``llm`` judge: the largest tier answers a fixed yes/no question about the candidate.

The question (a template with ``{question}``, ``{reference}`` and ``{candidate}``; a second one
without ``{reference}`` for when no reference exists) goes through an injected :data:`Ask`
callable; the router wires it to the ModelService path of the largest tier with one generated
token and its log-probabilities. This module holds only the logic: no transport.

P(acceptable) from the first generated token:

- "Yes" and "No" variants (case, surrounding spaces and punctuation ignored) are collected from
  the generated token and the top alternatives; each variant's probability is ``exp(logprob)``.
- Both seen: ``P(yes) / (P(yes) + P(no))`` (the mass on other tokens is ignored).
- Only "Yes" seen: ``P(yes)``.
- Only "No" seen: ``1 - P(no)``. This treats all mass not on "No" as "Yes"; a fair
  approximation for a one-token yes/no answer whose alternatives were not returned, and it errs
  towards "acceptable" only when the tier itself was unsure.
- The generated token is "Yes" or "No" but carries no log-probability: 1 or 0.
- Neither: undecided (the tier did not answer the question).

``acceptable`` is ``P(yes) >= threshold`` (0.5 by default).

The candidate's text goes into the question as is, so an answer that addresses the grader
("reply Yes") can sway it: verdicts of this judge are evidence, not proof, and the quality
monitor should weigh them as such.
"""

from __future__ import annotations

import math
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from tierroute.judges.base import JudgeCase, JudgeError, JudgeUnavailableError, Verdict, undecided

NAME = "llm"

DEFAULT_TEMPLATE = (
    "You are grading an answer against a reference answer written by a strong model.\n\n"
    "Question:\n{question}\n\n"
    "Reference answer:\n{reference}\n\n"
    "Answer to grade:\n{candidate}\n\n"
    "Is the answer to grade correct and as useful as the reference answer (its final result "
    "agrees with the reference, and it answers the question)? Reply with one word: Yes or No."
)
"""Default comparison question; placeholders ``{question}``, ``{reference}``, ``{candidate}``."""

DEFAULT_TEMPLATE_NO_REFERENCE = (
    "You are grading an answer to a question.\n\n"
    "Question:\n{question}\n\n"
    "Answer to grade:\n{candidate}\n\n"
    "Is the answer correct and does it answer the question? Reply with one word: Yes or No."
)
"""Default question when no reference exists; placeholders ``{question}``, ``{candidate}``."""

TEMPLATE_FIELDS = frozenset({"question", "reference", "candidate"})
TEMPLATE_FIELDS_NO_REFERENCE = frozenset({"question", "candidate"})


@dataclass(frozen=True)
class AskResult:
    """What the largest tier generated for a judging question (one token)."""

    token: str
    """The generated token's text."""
    logprob: float | None
    """Its log-probability (natural log); None when the tier returned none."""
    alternatives: Mapping[str, float] = field(default_factory=dict)
    """Top alternative tokens at that position and their log-probabilities, if any."""
    cost_usd: float = 0.0
    """What the call cost, US dollars (input and output tokens at the tier's prices)."""


Ask = Callable[[str], Awaitable[AskResult]]
"""Sends a judging prompt to the largest tier (one generated token) and returns the result."""


def template_fields(template: str) -> frozenset[str]:
    """The placeholder names of ``template`` (``ValueError`` if it is not a format string)."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    return frozenset(names)


def _word(token: str) -> str:
    return token.strip().strip(string.punctuation).strip().lower()


def p_yes(result: AskResult) -> float | None:
    """P(yes) from one generated token and its alternatives (rules in the module docstring)."""
    candidates = dict(result.alternatives)
    if result.logprob is not None:
        candidates[result.token] = result.logprob
    yes = sum(math.exp(lp) for tok, lp in candidates.items() if _word(tok) == "yes")
    no = sum(math.exp(lp) for tok, lp in candidates.items() if _word(tok) == "no")
    seen_yes = any(_word(tok) == "yes" for tok in candidates)
    seen_no = any(_word(tok) == "no" for tok in candidates)
    if seen_yes and seen_no and yes + no > 0.0:
        return min(1.0, yes / (yes + no))
    if seen_yes:
        return min(1.0, yes)
    if seen_no:
        return max(0.0, 1.0 - min(1.0, no))
    generated = _word(result.token)
    if generated in ("yes", "no"):
        return 1.0 if generated == "yes" else 0.0
    return None


class LlmJudge:
    """Asks the largest tier whether the candidate answer is acceptable."""

    name = NAME

    def __init__(
        self,
        ask: Ask,
        template: str = DEFAULT_TEMPLATE,
        template_no_reference: str = DEFAULT_TEMPLATE_NO_REFERENCE,
        threshold: float = 0.5,
    ) -> None:
        if template_fields(template) != TEMPLATE_FIELDS:
            raise ValueError(f"llm template needs exactly the fields {sorted(TEMPLATE_FIELDS)}")
        if template_fields(template_no_reference) != TEMPLATE_FIELDS_NO_REFERENCE:
            raise ValueError(
                f"llm template without reference needs exactly the fields "
                f"{sorted(TEMPLATE_FIELDS_NO_REFERENCE)}"
            )
        if not 0.0 < threshold < 1.0:
            raise ValueError("llm threshold must be in (0, 1)")
        self._ask = ask
        self._template = template
        self._template_no_reference = template_no_reference
        self._threshold = threshold

    def question(self, case: JudgeCase) -> str:
        """The prompt sent to the largest tier for ``case``."""
        if case.reference is None:
            return self._template_no_reference.format(
                question=case.prompt, candidate=case.candidate
            )
        return self._template.format(
            question=case.prompt, reference=case.reference, candidate=case.candidate
        )

    async def judge(self, case: JudgeCase) -> Verdict:
        """P(acceptable) from the largest tier's yes/no answer; undecided if it said neither."""
        try:
            result = await self._ask(self.question(case))
        except JudgeError:
            raise
        except Exception as exc:  # the injected transport's own errors, whatever they are
            raise JudgeUnavailableError(
                f"llm judge: asking the largest tier failed: {exc}"
            ) from exc
        cost = max(0.0, result.cost_usd)
        score = p_yes(result)
        if score is None:
            return undecided(NAME, "the largest tier answered neither yes nor no", cost)
        acceptable = score >= self._threshold
        return Verdict(
            acceptable=acceptable,
            score=score,
            judge=NAME,
            reason=f"largest tier says {'yes' if acceptable else 'no'} (P(yes)={score:.2f})",
            cost_usd=cost,
        )
