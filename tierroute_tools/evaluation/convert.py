"""RouteLLM's routing data → the generic outcome JSONL (``tierroute eval convert``).

Rows are de-duplicated by prompt (``tierroute.outcomes.deduplicate``) because the classifier's
split is defined on distinct prompts; ``split`` keeps one side of that split, computed exactly
as the classifier's training computes it (seed and fractions from its card when there is one),
so "the held-out test split" means the same prompts everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tierroute.outcomes import BENCHMARKS, deduplicate, load_routellm, write_outcomes
from tierroute_tools.classifier_training.dataset import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEED,
    assign_split,
)

SPLIT_CHOICES = ("all", "train", "validation", "test")


def card_split(card_path: Path | None = None) -> tuple[int, tuple[float, float, float]]:
    """Seed and fractions of the classifier's split (its card's, else the training defaults)."""
    if card_path is None:
        from tierroute.classifier_artifact import CARD_FILE, default_artifact_dir

        card_path = default_artifact_dir() / CARD_FILE
    if not card_path.is_file():
        return DEFAULT_SEED, DEFAULT_FRACTIONS
    split = json.loads(card_path.read_text(encoding="utf-8")).get("split", {})
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
        rows = [row for row in rows if assign_split(row.prompt, seed, fractions) == split]
    write_outcomes(out, rows)
    return len(rows)
