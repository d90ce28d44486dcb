"""The outcome format and the RouteLLM loaders (on the repository's copy of the data)."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tierroute.outcomes import (
    STRONG_MODEL,
    WEAK_MODEL,
    Outcome,
    TokenCounts,
    deduplicate,
    default_routellm_dir,
    load_routellm,
    prompt_key,
    read_outcomes,
    write_outcomes,
)


@pytest.fixture(scope="module")
def routellm() -> list[Outcome]:
    return load_routellm()


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [
        Outcome("What is 2+2?", {"a": 1.0, "b": 0.0}, "handwritten"),
        Outcome("Hi", {"a": 0.5}, "chat/x", tokens={"a": TokenCounts(3, 7)}),
    ]
    path = tmp_path / "o.jsonl"
    write_outcomes(path, rows)
    assert read_outcomes(path) == rows
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"prompt", "scores", "source"}  # "tokens" only when known


@pytest.mark.parametrize(
    "row",
    [
        {"scores": {"a": 1}, "source": "s"},
        {"prompt": "p", "scores": {}, "source": "s"},
        {"prompt": 3, "scores": {"a": 1}, "source": "s"},
    ],
)
def test_malformed_rows_are_rejected(row: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Outcome.from_json(row)


def test_routellm_counts_after_decontamination(routellm: list[Outcome]) -> None:
    # 14,042 MMLU, 1,319 GSM8K and 80 MT-Bench prompts upstream, minus the contaminated ones.
    assert Counter(o.benchmark for o in routellm) == {"mmlu": 14037, "gsm8k": 1307, "mt_bench": 72}


def test_contaminated_prompts_are_gone(routellm: list[Outcome]) -> None:
    prompts = {o.prompt for o in routellm}
    for benchmark in ("mmlu", "gsm8k", "mt_bench"):
        path = default_routellm_dir() / benchmark / "contaminated_prompts.jsonl"
        dropped = [json.loads(line)["eval_prompt"] for line in path.read_text().splitlines()]
        assert dropped and not prompts & set(dropped)


def test_scores_are_normalised(routellm: list[Outcome]) -> None:
    assert all(set(o.scores) == {STRONG_MODEL, WEAK_MODEL} for o in routellm)
    assert all(0.0 <= v <= 1.0 for o in routellm for v in o.scores.values())
    mt_bench = [o for o in routellm if o.benchmark == "mt_bench"]
    # Judge scores 1-10 averaged over two turns, divided by 10: not just 0/1.
    assert any(0.0 < o.scores[WEAK_MODEL] < 1.0 for o in mt_bench)
    strong = sum(o.scores[STRONG_MODEL] for o in routellm if o.benchmark == "mmlu")
    assert strong / 14037 == pytest.approx(0.806, abs=0.001)


def test_sources_name_the_subset(routellm: list[Outcome]) -> None:
    sources = {o.source for o in routellm}
    assert "mmlu/anatomy" in sources and "gsm8k" in sources and "mt_bench/writing" in sources


def test_plain_and_gzip_files_load_alike(tmp_path: Path) -> None:
    source = default_routellm_dir() / "gsm8k"
    target = tmp_path / "gsm8k"
    target.mkdir()
    shutil.copy(source / "contaminated_prompts.jsonl", target)
    with gzip.open(source / "gsm8k_responses.csv.gz", "rb") as zipped:
        (target / "gsm8k_responses.csv").write_bytes(zipped.read())
    plain = load_routellm(tmp_path, benchmarks=["gsm8k"])
    assert plain == load_routellm(benchmarks=["gsm8k"])


def test_unknown_benchmark_and_missing_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmarks"):
        load_routellm(benchmarks=["hellaswag"])
    with pytest.raises(FileNotFoundError, match="routing data missing"):
        load_routellm(tmp_path, benchmarks=["gsm8k"])


def test_deduplicate_merges_whitespace_variants_with_mean_scores() -> None:
    rows = [
        Outcome("What  is\nX?", {"s": 1.0, "w": 1.0}, "mmlu/a"),
        Outcome("Other", {"s": 1.0, "w": 0.0}, "mmlu/a"),
        Outcome("What is X? ", {"s": 1.0, "w": 0.0}, "mmlu/b"),
    ]
    merged = deduplicate(rows)
    assert len(merged) == 2
    first = merged[0]
    assert first.source == "mmlu/a" and first.scores == {"s": 1.0, "w": 0.5}
    assert prompt_key(first.prompt) == "What is X?"


def test_routellm_duplicates_exist_and_are_merged(routellm: list[Outcome]) -> None:
    merged = deduplicate(routellm)
    assert len(merged) == 15311
    assert len({prompt_key(o.prompt) for o in merged}) == len(merged)
