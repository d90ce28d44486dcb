"""Labelled, split training data for the router's classifier, from per-prompt outcomes.

Label 1 = the weak model's answer is as good as the strong one's: its score is at least the
strong score minus ``margin``. Scores are in [0, 1] (correctness for MMLU/GSM8K, judge score
/ 10 for MT-Bench), so the default margin of 0.1 means "within one judge point" on MT-Bench
and "correct, or both wrong" on graded benchmarks.

The split is by prompt: each distinct prompt lands in train, validation or test by a seeded
hash of its text, so the assignment depends on nothing but the text and the seed — not on file
order, and never on two sides at once. "Distinct" means after exact de-duplication
(:func:`tierroute.outcomes.deduplicate`, whitespace folded) *and* near-duplicate merging
(:mod:`.near_duplicates`: the same question with other punctuation, capitals or numbers), so
near-duplicates cannot straddle the split either; the dataset records how many it merged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, Outcome, deduplicate, prompt_key
from tierroute_tools.classifier_training.near_duplicates import (
    DEFAULT_THRESHOLD,
    merge_near_duplicates,
)

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
DEFAULT_MARGIN = 0.1
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Example:
    """One prompt with its label, qualities and split."""

    prompt: str
    source: str
    weak: float
    strong: float
    label: bool
    split: str


@dataclass(frozen=True)
class Dataset:
    """Examples plus how they were made (for the card)."""

    examples: tuple[Example, ...]
    margin: float
    seed: int
    fractions: tuple[float, float, float]
    data_sha256: str
    """Hash of the de-duplicated outcomes the examples came from (order-independent)."""
    merged_duplicates: int
    """Rows merged into another with the same prompt (whitespace folded)."""
    near_duplicate_pairs: int = 0
    """Pairs of distinct prompts found to be near-duplicates (all pairs within each group)."""
    merged_near_duplicates: int = 0
    """Prompts merged into a near-duplicate (distinct prompts before minus after)."""
    near_duplicate_threshold: float | None = None
    """Jaccard threshold of the near-duplicate merge; None when it was off."""

    def split(self, name: str) -> list[Example]:
        """The examples of one split, in a deterministic order."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}")
        return [e for e in self.examples if e.split == name]

    def sizes(self) -> dict[str, int]:
        """Examples per split."""
        counts = Counter(e.split for e in self.examples)
        return {name: counts.get(name, 0) for name in SPLITS}

    def positive_rate(self) -> dict[str, float]:
        """Share of label 1 per split."""
        result = {}
        for name in SPLITS:
            rows = self.split(name)
            result[name] = sum(e.label for e in rows) / len(rows) if rows else 0.0
        return result


def assign_split(prompt: str, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The split of ``prompt``: a seeded sha256 of its key mapped onto the fractions."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_key(prompt)}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        edge += fraction
        if position < edge:
            return name
    return SPLITS[-1]


def outcomes_sha256(outcomes: Sequence[Outcome]) -> str:
    """Order-independent hash of outcome rows (each row's canonical JSON, sorted)."""
    lines = sorted(json.dumps(o.to_json(), sort_keys=True, ensure_ascii=False) for o in outcomes)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def build_dataset(
    outcomes: Sequence[Outcome],
    *,
    margin: float = DEFAULT_MARGIN,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    weak_model: str = WEAK_MODEL,
    strong_model: str = STRONG_MODEL,
    near_duplicate_threshold: float | None = DEFAULT_THRESHOLD,
) -> Dataset:
    """De-duplicate (exact, then near-duplicates unless ``near_duplicate_threshold`` is None),
    label and split ``outcomes`` (rows lacking either model are skipped)."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise ValueError("fractions must be positive and sum to 1")
    exact = deduplicate(outcomes)
    pairs = 0
    unique = exact
    if near_duplicate_threshold is not None:
        near = merge_near_duplicates(exact, threshold=near_duplicate_threshold)
        unique, pairs = list(near.outcomes), near.pairs
    examples = []
    for outcome in unique:
        if weak_model not in outcome.scores or strong_model not in outcome.scores:
            continue
        weak, strong = outcome.scores[weak_model], outcome.scores[strong_model]
        examples.append(
            Example(
                prompt=outcome.prompt,
                source=outcome.source,
                weak=weak,
                strong=strong,
                label=weak >= strong - margin,
                split=assign_split(outcome.prompt, seed, fractions),
            )
        )
    return Dataset(
        examples=tuple(examples),
        margin=margin,
        seed=seed,
        fractions=fractions,
        data_sha256=outcomes_sha256(unique),
        merged_duplicates=len(outcomes) - len(exact),
        near_duplicate_pairs=pairs,
        merged_near_duplicates=len(exact) - len(unique),
        near_duplicate_threshold=near_duplicate_threshold,
    )


def arrays(
    examples: Sequence[Example],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Labels, weak qualities and strong qualities of ``examples`` as arrays."""
    labels = np.array([e.label for e in examples], dtype=bool)
    weak = np.array([e.weak for e in examples], dtype=np.float64)
    strong = np.array([e.strong for e in examples], dtype=np.float64)
    return labels, weak, strong
