"""Judge-vs-gold agreement on a stream's items, measured offline from the pinned arms.

For every item both pinned arms answered without error, the judge the controller uses for the
item's kind (``agreement`` for numbers, ``code`` for code) decides whether the cheapest tier's
answer was acceptable given the largest tier's answer, exactly as the router's judged shadow
sample would; its verdict is compared with the cheapest answer's gold correctness. Agreement is
over the decided cases; coverage is the share decided. The gold answers never reach a judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierroute.judges import AgreementJudge, AnswerFormat, CodeJudge, Judge, JudgeCase
from tierroute_tools.evaluation.live import CODE, LiveItem, LiveRecord

KIND_JUDGES: Mapping[str, str] = {"number": "agreement", "choice": "agreement", CODE: "code"}
"""The judge applied to each task kind (the controller's configuration in a stream run)."""


def judge_case(item: LiveItem, candidate: str, reference: str) -> JudgeCase:
    """What the router's judge sees: the prompt and both answers, never the gold answer."""
    formats: dict[str, AnswerFormat] = {CODE: "code", "number": "number", "choice": "choice"}
    answer_format = formats.get(str(item.kind))
    return JudgeCase(
        prompt=item.prompt, candidate=candidate, reference=reference, answer_format=answer_format
    )


def agreement_table(outcomes: Sequence[tuple[str, bool | None, bool]]) -> dict[str, Any]:
    """Agreement and coverage, overall and per judge, from ``(judge, verdict or None, gold)``."""

    def figures(rows: Sequence[tuple[str, bool | None, bool]]) -> dict[str, Any]:
        decided = [(verdict, gold) for _, verdict, gold in rows if verdict is not None]
        agree = sum(verdict == gold for verdict, gold in decided)
        return {
            "cases": len(rows),
            "decided": len(decided),
            "coverage": len(decided) / len(rows) if rows else None,
            "agreement_with_gold": agree / len(decided) if decided else None,
            "false_accepts": sum(v and not g for v, g in decided),
            "false_rejects": sum(g and not v for v, g in decided),
        }

    names = sorted({judge for judge, _, _ in outcomes})
    return {
        **figures(outcomes),
        "by_judge": {name: figures([o for o in outcomes if o[0] == name]) for name in names},
    }


async def judge_agreement(
    items: Sequence[LiveItem],
    records: Sequence[LiveRecord],
    cheapest: str,
    largest: str,
    judges: Mapping[str, Judge] | None = None,
) -> dict[str, Any]:
    """Run the kind's judge on every (cheapest, largest) answer pair; compare with gold."""
    built: Mapping[str, Judge] = judges or {"agreement": AgreementJudge(), "code": CodeJudge()}
    answers: dict[tuple[str, str], LiveRecord] = {(r.arm, r.item_id): r for r in records}
    outcomes: list[tuple[str, bool | None, bool]] = []
    for item in items:
        small, large = answers.get((cheapest, item.id)), answers.get((largest, item.id))
        if small is None or large is None or small.error or large.error:
            continue
        name = KIND_JUDGES.get(str(item.kind), "agreement")
        verdict = await built[name].judge(judge_case(item, small.text, large.text))
        outcomes.append((name, verdict.acceptable if verdict.decided else None, small.correct))
    return agreement_table(outcomes)
