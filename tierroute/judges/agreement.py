"""The ``agreement`` judge: the cheaper answer is acceptable when its final result matches the
largest tier's.

Cheap (no model call, no code run) and exact for tasks with a canonical answer: a number, a
letter, a short answer, a code block (see :mod:`tierroute.judges.normalise`). The format comes
from the case when the caller knows it, else from the reference answer. Undecided when there is
no reference or the reference has no canonical result (prose): a different judge must read
those. A candidate with no result where the reference has one is not acceptable.

Code blocks match only when their ASTs (or tokens) are equal, so two different correct programs
disagree: route code to the ``code`` judge when examples or tests exist.
"""

from __future__ import annotations

from tierroute.judges.base import JudgeCase, Verdict, ruled, undecided
from tierroute.judges.normalise import canonical, infer_format

NAME = "agreement"


class AgreementJudge:
    """Compares the normalised final results of the candidate and the reference answers."""

    name = NAME

    async def judge(self, case: JudgeCase) -> Verdict:
        """Acceptable when both answers' canonical results are equal."""
        if case.reference is None:
            return undecided(NAME, "no reference answer to compare with")
        answer_format = case.answer_format or infer_format(case.reference)
        if answer_format is None:
            return undecided(NAME, "the reference answer has no canonical result")
        expected = canonical(case.reference, answer_format)
        got = canonical(case.candidate, answer_format)
        if expected is None and got is None:
            return undecided(NAME, f"neither answer has a final {answer_format}")
        if expected is None:
            return undecided(NAME, f"the reference answer has no final {answer_format}")
        if got is None:
            return ruled(NAME, False, f"the answer has no final {answer_format}")
        if got == expected:
            return ruled(NAME, True, f"final {answer_format} matches the reference")
        return ruled(NAME, False, f"final {answer_format} differs from the reference")
