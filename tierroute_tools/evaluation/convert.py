"""RouteLLM's routing data → the generic outcome JSONL (``tierroute eval convert``).

Rows are de-duplicated by prompt (``tierroute.outcomes.deduplicate``) because the classifier's
split is defined on distinct prompts; ``split`` keeps one side of that split, computed exactly
as the classifier's training computes it (seed, fractions and near-duplicate threshold from its
card when there is one): near-duplicates are merged first, one outcome per group, so no prompt
in "the held-out test split" has a near-duplicate the classifier was trained on, and the split
holds the same prompts everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tierroute.outcomes import BENCHMARKS, deduplicate, load_routellm, write_outcomes
from tierroute_tools.classifier_training.dataset import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEED,
    assign_split,
)
from tierroute_tools.classifier_training.near_duplicates import (
    DEFAULT_THRESHOLD,
    merge_near_duplicates,
)

SPLIT_CHOICES = ("all", "train", "validation", "test")


def _card_path(card_path: Path | None) -> Path:
    if card_path is None:
        from tierroute.classifier_artifact import CARD_FILE, default_artifact_dir

        return default_artifact_dir() / CARD_FILE
    return card_path


def _card_section(card_path: Path | None) -> dict[str, Any] | None:
    path = _card_path(card_path)
    if not path.is_file():
        return None
    split = json.loads(path.read_text(encoding="utf-8")).get("split", {})
    return split if isinstance(split, dict) else {}


def card_near_duplicate_threshold(card_path: Path | None = None) -> float | None:
    """The near-duplicate threshold the classifier's split merged at (None: no merging).

    A card that does not say (built before near-duplicates were merged) and no card at all
    mean the training default."""
    split = _card_section(card_path)
    if split is None or "near_duplicates" not in split:
        return DEFAULT_THRESHOLD
    section = split["near_duplicates"]
    threshold = section.get("threshold") if isinstance(section, dict) else None
    return None if threshold is None else float(threshold)


def card_split(card_path: Path | None = None) -> tuple[int, tuple[float, float, float]]:
    """Seed and fractions of the classifier's split (its card's, else the training defaults)."""
    split = _card_section(card_path)
    if split is None:
        return DEFAULT_SEED, DEFAULT_FRACTIONS
    fractions = tuple(float(f) for f in split.get("fractions", DEFAULT_FRACTIONS))
    if len(fractions) != 3:
        raise ValueError(f"{card_path}: split fractions must have three values")
    return int(split.get("seed", DEFAULT_SEED)), (fractions[0], fractions[1], fractions[2])


def convert_routellm(
    out: Path,
    data_dir: Path | None = None,
    benchmarks: Sequence[str] | None = None,
    split: str = "all",
    card_path: Path | None = None,
) -> int:
    """Write the converted rows to ``out``; returns how many."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {SPLIT_CHOICES}")
    rows = deduplicate(load_routellm(data_dir, tuple(benchmarks or BENCHMARKS)))
    if split != "all":
        seed, fractions = card_split(card_path)
        threshold = card_near_duplicate_threshold(card_path)
        if threshold is not None:
            rows = list(merge_near_duplicates(rows, threshold=threshold).outcomes)
        rows = [row for row in rows if assign_split(row.prompt, seed, fractions) == split]
    write_outcomes(out, rows)
    return len(rows)
