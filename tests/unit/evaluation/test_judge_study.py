"""The judge study: recorded answer pairs judged, verdicts compared with gold."""

from __future__ import annotations

import json
from pathlib import Path

from tierroute.judges import AgreementJudge
from tierroute.judges.llm import AskResult, LlmJudge
from tierroute_tools.evaluation.judge_study import judge_all, markdown, read_pairs


def _records(path: Path) -> Path:
    rows = [
        # small right, large right: the judge should accept
        ("a", "small", "So 3 + 4 = 7.", True),
        ("a", "large", "The answer is 7", True),
        # small wrong, large right: reject
        ("b", "small", "It is 12.", False),
        ("b", "large", "The answer is 10", True),
        # small right, large wrong: agreement rejects a right answer (the reference's error)
        ("c", "small", "The answer is 5", True),
        ("c", "large", "The answer is 6", False),
        # only one tier answered: dropped
        ("d", "small", "9", True),
    ]
    lines = [
        json.dumps({"id": i, "tier": t, "sample": 0, "prompt": f"q {i}", "text": x, "correct": ok})
        for i, t, x, ok in rows
    ]
    lines.append(json.dumps({"id": "a", "tier": "small", "sample": 1, "text": "x", "correct": 0}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_agreement_study_counts_against_gold(tmp_path: Path) -> None:
    pairs = read_pairs(_records(tmp_path / "r.jsonl"), "small", "large")
    assert [p.id for p in pairs] == ["a", "b", "c"]
    result = await judge_all("agreement", AgreementJudge(), pairs)
    assert result["decided"] == 3
    assert result["counts"] == {"tp": 1, "tn": 1, "fn": 1, "fp": 0}
    assert result["agreement"] == 2 / 3
    assert result["agreement_reference_right"] == 1.0  # the miss is the wrong reference's
    assert "| `agreement` | 3 | 3 | 0.667 | 1.000 |" in markdown({"agreement": result})


async def test_llm_study_reads_the_tiers_yes_or_no(tmp_path: Path) -> None:
    pairs = read_pairs(_records(tmp_path / "r.jsonl"), "small", "large")

    async def ask(question: str) -> AskResult:
        # A grader that says Yes to everything: it accepts the wrong answer of item b.
        return AskResult(token="Yes", logprob=-0.1)

    result = await judge_all("llm", LlmJudge(ask), pairs)
    assert result["counts"] == {"tp": 2, "fp": 1, "tn": 0, "fn": 0}
    assert result["agreement"] == 2 / 3
