"""The converter on a slice of each RouteLLM file (the real files, cut short)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, default_routellm_dir, read_outcomes
from tierroute_tools.evaluation.convert import card_split, convert_routellm

ROUTELLM = default_routellm_dir()


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    return path.read_text(encoding="utf-8")


def _csv_head(source: Path, target: Path, rows: int) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(_read_text(source), newline=""))
    kept = [row for _, row in zip(range(rows), reader, strict=False)]
    assert reader.fieldnames is not None
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(kept)
    return kept


@pytest.fixture(scope="module")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mmlu`` (2 subjects x 6 rows), ``gsm8k`` (8 rows), ``mt_bench`` (4 questions)."""
    root = tmp_path_factory.mktemp("routellm")
    (root / "mmlu" / "responses").mkdir(parents=True)
    first = []
    for subject in ("anatomy", "astronomy"):
        first += _csv_head(
            ROUTELLM / "mmlu" / "responses" / f"mmlu_{subject}.csv.gz",
            root / "mmlu" / "responses" / f"mmlu_{subject}.csv",
            6,
        )
    # One contaminated MMLU prompt, to see it dropped.
    (root / "mmlu" / "contaminated_prompts.jsonl").write_text(
        json.dumps({"eval_prompt": first[0]["prompt"], "train_prompt": "x"}) + "\n"
    )
    (root / "gsm8k").mkdir()
    _csv_head(
        ROUTELLM / "gsm8k" / "gsm8k_responses.csv.gz", root / "gsm8k" / "gsm8k_responses.csv", 8
    )
    (root / "gsm8k" / "contaminated_prompts.jsonl").write_text("")
    (root / "mt_bench").mkdir()
    questions = _read_text(ROUTELLM / "mt_bench" / "question.jsonl").splitlines()[:4]
    ids = {json.loads(q)["question_id"] for q in questions}
    (root / "mt_bench" / "question.jsonl").write_text("\n".join(questions) + "\n")
    judged = [
        line
        for line in _read_text(ROUTELLM / "mt_bench" / "judgements.jsonl.gz").splitlines()
        if line.strip() and json.loads(line)["question_id"] in ids
    ]
    (root / "mt_bench" / "judgements.jsonl").write_text("\n".join(judged) + "\n")
    # The real contamination list (it names the first question's first turn).
    (root / "mt_bench" / "contaminated_prompts.jsonl").write_text(
        _read_text(ROUTELLM / "mt_bench" / "contaminated_prompts.jsonl")
    )
    return root


def test_converts_every_benchmark(sliced: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    count = convert_routellm(out, sliced)
    rows = read_outcomes(out)
    assert count == len(rows)
    by_benchmark = {
        name: [r for r in rows if r.benchmark == name] for name in ("mmlu", "gsm8k", "mt_bench")
    }
    assert len(by_benchmark["mmlu"]) == 11  # 12 rows, one contaminated
    assert {r.source for r in by_benchmark["mmlu"]} == {"mmlu/anatomy", "mmlu/astronomy"}
    assert len(by_benchmark["gsm8k"]) == 8
    assert len(by_benchmark["mt_bench"]) == 3  # question 81 is contaminated
    for row in rows:
        assert set(row.scores) == {STRONG_MODEL, WEAK_MODEL}
        assert all(0.0 <= v <= 1.0 for v in row.scores.values())
        assert row.tokens is None
    # Graded benchmarks score 0/1; MT-Bench the mean of both turns' judge scores / 10.
    assert {v for r in by_benchmark["gsm8k"] for v in r.scores.values()} <= {0.0, 1.0}
    assert any(0 < v < 1 for r in by_benchmark["mt_bench"] for v in r.scores.values())


def test_one_benchmark_and_splits_partition(sliced: Path, tmp_path: Path) -> None:
    assert convert_routellm(tmp_path / "g.jsonl", sliced, ["gsm8k"]) == 8
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"split": {"seed": 3, "fractions": [0.5, 0.25, 0.25]}}))
    assert card_split(card) == (3, (0.5, 0.25, 0.25))
    counts = {
        split: convert_routellm(tmp_path / f"{split}.jsonl", sliced, None, split, card)
        for split in ("train", "validation", "test")
    }
    everything = {r.prompt for r in read_outcomes(tmp_path / "g.jsonl")}
    parts = [
        {r.prompt for r in read_outcomes(tmp_path / f"{split}.jsonl")}
        for split in ("train", "validation", "test")
    ]
    assert sum(counts.values()) == convert_routellm(tmp_path / "a.jsonl", sliced)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert everything <= parts[0] | parts[1] | parts[2]


def test_unknown_split_is_refused(sliced: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        convert_routellm(tmp_path / "x.jsonl", sliced, None, "dev")


def _write_gsm8k(root: Path, prompts: list[str]) -> None:
    """A RouteLLM-shaped data folder holding only GSM8K rows with these prompts."""
    source = ROUTELLM / "gsm8k" / "gsm8k_responses.csv.gz"
    reader = csv.DictReader(io.StringIO(_read_text(source), newline=""))
    template = next(iter(reader))
    assert reader.fieldnames is not None
    (root / "gsm8k").mkdir(parents=True)
    with (root / "gsm8k" / "gsm8k_responses.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows({**template, "prompt": prompt} for prompt in prompts)
    (root / "gsm8k" / "contaminated_prompts.jsonl").write_text("")


def test_near_duplicates_never_straddle_the_split(tmp_path: Path) -> None:
    # The same question with other numbers: exact de-duplication keeps all of them, and each
    # text's own hash sends them to different splits. Merged first, they land on one side only.
    question = (
        "Tom has {} apples and buys {} more at the market on Monday. "
        "How many apples does he have now?"
    )
    prompts = [question.format(a, a + 3) for a in range(2, 40)]
    data = tmp_path / "routellm"
    _write_gsm8k(data, prompts)
    card = tmp_path / "card.json"
    fractions = [0.34, 0.33, 0.33]
    card.write_text(json.dumps({"split": {"seed": 0, "fractions": fractions}}))
    sides = {
        split: read_outcomes_count(tmp_path, data, split, card)
        for split in ("train", "validation", "test")
    }
    assert sorted(sides.values()) == [0, 0, 1], sides  # one merged outcome, on one side
    # Without merging (a card that says so), the same prompts straddle the split.
    card.write_text(
        json.dumps(
            {"split": {"seed": 0, "fractions": fractions, "near_duplicates": {"threshold": None}}}
        )
    )
    unmerged = {
        split: read_outcomes_count(tmp_path, data, split, card)
        for split in ("train", "validation", "test")
    }
    assert sum(unmerged.values()) == len(prompts)
    assert sum(1 for count in unmerged.values() if count) >= 2


def read_outcomes_count(tmp_path: Path, data: Path, split: str, card: Path) -> int:
    out = tmp_path / f"{split}.jsonl"
    count = convert_routellm(out, data, ["gsm8k"], split, card)
    assert count == len(read_outcomes(out))
    return count
