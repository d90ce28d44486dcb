"""Per-prompt outcomes of several models: the one data format of training and evaluation.

A row says how well each model answered one prompt::

    {"prompt": str, "scores": {model: float}, "source": str,
     "tokens": {model: {"input": int, "output": int}}}      # "tokens" optional

Scores are in [0, 1], higher is better: 1/0 for graded-correct answers (MMLU, GSM8K), the
judge's 1-10 score divided by 10 for MT-Bench. ``source`` names the benchmark and, after a
slash, its subset (``mmlu/anatomy``, ``gsm8k``, ``mt_bench/writing``).

The loaders read lm-sys/RouteLLM's routing data (copied, gzip-compressed, into
``data/routellm``; see its ``SOURCE.md``) the way RouteLLM's own evaluation does: contaminated
prompts dropped, MT-Bench routed on the first turn and scored by the mean of both turns'
judgements. :func:`deduplicate` then merges prompts that appear in more than one file (same text
up to whitespace), so that a split by prompt can never put one question on both sides.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STRONG_MODEL = "gpt-4-1106-preview"
"""The strong model of the RouteLLM data."""
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
"""The weak model of the RouteLLM data."""
BENCHMARKS: tuple[str, ...] = ("mmlu", "gsm8k", "mt_bench")
MT_BENCH_MAX_SCORE = 10.0


@dataclass(frozen=True)
class TokenCounts:
    """Prompt and answer length of one model's answer (tokens of that model)."""

    input: int
    output: int


@dataclass(frozen=True)
class Outcome:
    """One prompt and how well each model answered it; see the module docstring."""

    prompt: str
    scores: Mapping[str, float]
    source: str
    tokens: Mapping[str, TokenCounts] | None = field(default=None)

    @property
    def benchmark(self) -> str:
        """The benchmark part of ``source`` (before the first slash)."""
        return self.source.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        """The JSONL row of this outcome."""
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "scores": dict(self.scores),
            "source": self.source,
        }
        if self.tokens is not None:
            row["tokens"] = {
                model: {"input": t.input, "output": t.output} for model, t in self.tokens.items()
            }
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Outcome:
        """Parse and validate one JSONL row; raises ``ValueError`` on a malformed row."""
        try:
            prompt, scores, source = row["prompt"], row["scores"], row["source"]
        except KeyError as exc:
            raise ValueError(f"outcome row lacks {exc}") from exc
        if not isinstance(prompt, str) or not isinstance(source, str):
            raise ValueError("outcome prompt and source must be strings")
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError("outcome scores must be a non-empty object")
        parsed = {str(model): float(value) for model, value in scores.items()}
        tokens = None
        if row.get("tokens") is not None:
            tokens = {
                str(model): TokenCounts(int(t["input"]), int(t["output"]))
                for model, t in row["tokens"].items()
            }
        return cls(prompt=prompt, scores=parsed, source=source, tokens=tokens)


def read_outcomes(path: Path) -> list[Outcome]:
    """Rows of a JSONL file (``.jsonl`` or ``.jsonl.gz``)."""
    with _open_text(path) as handle:
        return [Outcome.from_json(json.loads(line)) for line in handle if line.strip()]


def write_outcomes(path: Path, outcomes: Iterable[Outcome]) -> None:
    """Write ``outcomes`` as JSONL (one row per line, keys in a stable order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.to_json(), ensure_ascii=False, sort_keys=True) + "\n")


def default_routellm_dir() -> Path:
    """``data/routellm`` of the repository this module belongs to."""
    return Path(__file__).resolve().parents[1] / "data" / "routellm"


def prompt_key(prompt: str) -> str:
    """The identity of a prompt for de-duplication and splitting: text with whitespace folded."""
    return " ".join(prompt.split())


def load_routellm(
    root: Path | None = None, benchmarks: Sequence[str] = BENCHMARKS
) -> list[Outcome]:
    """Decontaminated outcomes of RouteLLM's strong and weak model (not yet de-duplicated).

    ``root`` holds ``mmlu/``, ``gsm8k/`` and ``mt_bench/`` (plain or ``.gz`` files); by
    default the repository's copy. Rows come in a deterministic order (files sorted by name).
    """
    base = root or default_routellm_dir()
    loaders = {"mmlu": _load_mmlu, "gsm8k": _load_gsm8k, "mt_bench": _load_mt_bench}
    unknown = set(benchmarks) - set(loaders)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}; known: {list(loaders)}")
    rows: list[Outcome] = []
    for name in benchmarks:
        rows.extend(loaders[name](base / name))
    return rows


def deduplicate(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """One outcome per :func:`prompt_key`, in order of first appearance, with mean scores.

    A question that appears under two MMLU subjects was answered twice by each model; the
    mean keeps both observations (a disagreement becomes 0.5) instead of picking one. The
    merged row takes the text and source of the duplicate with the smallest (source, prompt),
    so the result does not depend on the order of the input.
    """
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[prompt_key(outcome.prompt)].append(outcome)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        first = min(group, key=lambda o: (o.source, o.prompt))
        models = sorted(set.intersection(*(set(o.scores) for o in group)))
        scores = {m: sum(o.scores[m] for o in group) / len(group) for m in models}
        merged.append(Outcome(first.prompt, scores, first.source, first.tokens))
    return merged


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _find(path: Path) -> Path:
    """``path`` or its ``.gz`` twin, whichever exists."""
    if path.is_file():
        return path
    zipped = path.with_name(path.name + ".gz")
    if zipped.is_file():
        return zipped
    raise FileNotFoundError(f"routing data missing: {path}[.gz]")


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with _open_text(_find(path)) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _contaminated(folder: Path) -> frozenset[str]:
    return frozenset(row["eval_prompt"] for row in _jsonl(folder / "contaminated_prompts.jsonl"))


def _correct(value: str) -> float:
    if value not in ("True", "False"):
        raise ValueError(f"expected True/False, got {value!r}")
    return 1.0 if value == "True" else 0.0


def _load_graded_csv(path: Path, source: str, drop: frozenset[str]) -> Iterator[Outcome]:
    with _open_text(path) as handle:
        for row in csv.DictReader(handle):
            if row["prompt"] in drop:
                continue
            scores = {model: _correct(row[model]) for model in (STRONG_MODEL, WEAK_MODEL)}
            yield Outcome(row["prompt"], scores, source)


def _load_mmlu(folder: Path) -> list[Outcome]:
    drop = _contaminated(folder)
    files = sorted((folder / "responses").glob("mmlu_*.csv*"))
    if not files:
        raise FileNotFoundError(f"routing data missing: {folder}/responses/mmlu_*.csv[.gz]")
    rows: list[Outcome] = []
    for path in files:
        subject = path.name.removeprefix("mmlu_").split(".", 1)[0]
        rows.extend(_load_graded_csv(path, f"mmlu/{subject}", drop))
    return rows


def _load_gsm8k(folder: Path) -> list[Outcome]:
    path = _find(folder / "gsm8k_responses.csv")
    return list(_load_graded_csv(path, "gsm8k", _contaminated(folder)))


def _load_mt_bench(folder: Path) -> list[Outcome]:
    drop = _contaminated(folder)
    judged: dict[tuple[int, str], list[float]] = defaultdict(list)
    for row in _jsonl(folder / "judgements.jsonl"):
        judged[(int(row["question_id"]), row["model"])].append(float(row["score"]))
    rows = []
    for question in _jsonl(folder / "question.jsonl"):
        turns = question["turns"]
        if any(turn in drop for turn in turns):
            continue
        qid = int(question["question_id"])
        scores = {}
        for model in (STRONG_MODEL, WEAK_MODEL):
            values = judged.get((qid, model))
            if not values:
                raise ValueError(f"MT-Bench question {qid} has no judgement of {model}")
            # RouteLLM routes a conversation on its first turn and scores it by both turns.
            scores[model] = sum(values) / len(values) / MT_BENCH_MAX_SCORE
        rows.append(Outcome(turns[0], scores, f"mt_bench/{question['category']}"))
    return rows
