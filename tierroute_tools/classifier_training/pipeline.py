"""The classifier pipeline's steps after export: train, calibrate, and the idempotent build.

:func:`build` runs every step whose inputs changed and skips the rest (export stamp, recipe
hash and file hashes in the card), so running it again is quick. Each step reports progress
through a ``log`` callable. The artefact layout is described in :mod:`.artifacts`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierroute import routing_metrics
from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, load_routellm
from tierroute_tools.classifier_training import calibrate as calib
from tierroute_tools.classifier_training.artifacts import (
    CARD_FORMAT,
    DEFAULT_TARGET,
    ArtifactPaths,
    Log,
    TrainOptions,
    quiet,
    read_json,
    run_export,
    versions,
    write_json,
)
from tierroute_tools.classifier_training.dataset import Dataset, Example, arrays, build_dataset
from tierroute_tools.classifier_training.features import cached_embed, file_sha256
from tierroute_tools.classifier_training.graph import Head, append_head, numpy_head
from tierroute_tools.classifier_training.train import select_head

__all__ = ["ArtifactPaths", "TrainOptions", "build", "run_calibrate", "run_export", "run_train"]


def load_dataset(options: TrainOptions) -> Dataset:
    """The labelled, split routing data."""
    return build_dataset(
        load_routellm(options.data_dir),
        margin=options.margin,
        seed=options.seed,
        fractions=options.fractions,
    )


def featurize(
    paths: ArtifactPaths, examples: Sequence[Example], options: TrainOptions, log: Log = quiet
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Embeddings of ``examples`` from the int8 encoder (cached)."""
    step = max(1, len(examples) // 10)
    marks = {"next": step}

    def progress(done: int, total: int) -> None:
        if done >= marks["next"] or done == total:
            log(f"features: {done}/{total} prompts embedded")
            marks["next"] = done + step

    return cached_embed(
        [e.prompt for e in examples],
        paths.encoder_int8,
        paths.tokenizer,
        options.truncation,
        paths.features,
        workers=options.workers,
        progress=progress,
    )


CARD_FIELDS = 2
"""Bumped when the card gains a section (2: the split's near-duplicate counts)."""


def recipe_sha256(paths: ArtifactPaths, dataset: Dataset, options: TrainOptions) -> str:
    """Identity of a training run's inputs (encoder, tokenizer, data, options)."""
    recipe = {
        "encoder": file_sha256(paths.encoder_int8),
        "tokenizer": file_sha256(paths.tokenizer),
        "data": dataset.data_sha256,
        "options": {k: v for k, v in asdict(options).items() if k not in ("data_dir", "workers")},
        # What the card records: a card written before a field was added is rebuilt.
        "card_fields": CARD_FIELDS,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _scored(examples: Sequence[Example], scores: np.ndarray[Any, Any]) -> calib.Scored:
    _, weak, strong = arrays(examples)
    return calib.Scored(scores=scores.astype(np.float32), weak=weak, strong=strong)


def _metrics(examples: Sequence[Example], scores: np.ndarray[Any, Any]) -> dict[str, Any]:
    labels, weak, strong = arrays(examples)
    result: dict[str, Any] = routing_metrics.summary(scores, weak, strong, labels)
    by_benchmark = {}
    benchmarks = np.array([e.source.split("/", 1)[0] for e in examples])
    for name in sorted(set(benchmarks)):
        keep = benchmarks == name
        by_benchmark[name] = routing_metrics.summary(
            scores[keep], weak[keep], strong[keep], labels[keep]
        )
    result["by_benchmark"] = by_benchmark
    return result


@dataclass(frozen=True)
class Fitted:
    """A head fitted on the train split and what the card reports about it."""

    head: Head
    picked: dict[str, list[Example]]
    """The examples of each split."""
    scores: dict[str, np.ndarray[Any, np.dtype[np.float32]]]
    """Validation and test scores."""
    sections: dict[str, Any]
    """The card's head, data, split, metrics, threshold table and calibration sections."""


def fit_and_report(
    examples: Sequence[Example],
    features: np.ndarray[Any, np.dtype[np.float32]],
    data: Dataset,
    options: TrainOptions,
    target: calib.Target,
    log: Log = quiet,
) -> Fitted:
    """Fit the head (C chosen by validation APGR), score validation and test, calibrate."""
    split = np.array([e.split for e in examples])
    parts = {name: split == name for name in ("train", "validation", "test")}
    picked = {
        name: [e for e, keep in zip(examples, mask, strict=True) if keep]
        for name, mask in parts.items()
    }
    train_y, _, _ = arrays(picked["train"])
    valid_y, valid_weak, valid_strong = arrays(picked["validation"])
    trained = select_head(
        features[parts["train"]],
        train_y,
        features[parts["validation"]],
        valid_y,
        valid_weak,
        valid_strong,
        options.c_grid,
    )
    log(f"train: logistic head, C={trained.c} chosen by validation APGR")
    head = trained.head
    scores = {name: numpy_head(features[parts[name]], head) for name in ("validation", "test")}
    validation = _scored(picked["validation"], scores["validation"])
    test = _scored(picked["test"], scores["test"])
    sizes = data.sizes()
    sections: dict[str, Any] = {
        "head": {
            "kind": "logistic_regression",
            "c": trained.c,
            "selection": "validation APGR",
            "candidates": [asdict(c) for c in trained.candidates],
            **head.to_json(),
        },
        "data": {
            "source": "lm-sys/RouteLLM routing data (data/routellm, Apache-2.0)",
            "sha256": data.data_sha256,
            "strong_model": STRONG_MODEL,
            "weak_model": WEAK_MODEL,
            "label": f"weak score >= strong score - {data.margin} (scores in [0, 1])",
            "margin": data.margin,
            "merged_duplicates": data.merged_duplicates,
        },
        "split": {
            "by": "prompt text (whitespace folded), seeded sha256",
            "seed": data.seed,
            "fractions": list(data.fractions),
            "sizes": sizes,
            "positive_rate": data.positive_rate(),
            "near_duplicates": {
                "threshold": data.near_duplicate_threshold,
                "pairs": data.near_duplicate_pairs,
                "merged": data.merged_near_duplicates,
            },
        },
        "validation": _metrics(picked["validation"], scores["validation"]),
        "test": _metrics(picked["test"], scores["test"]),
        "threshold_table": calib.threshold_table(validation),
        "calibration": calib.calibration(validation, test, target),
    }
    return Fitted(head=head, picked=picked, scores=scores, sections=sections)


def _require(paths: Sequence[Path], hint: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: {hint}")


def run_train(
    paths: ArtifactPaths,
    options: TrainOptions,
    target: calib.Target = DEFAULT_TARGET,
    *,
    dataset: Dataset | None = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Train the head, write both router graphs, the scores and the card; returns the card."""
    _require(
        (paths.encoder_fp32, paths.encoder_int8, paths.tokenizer),
        "run `tierroute classifier export` first",
    )
    started = time.monotonic()
    data = dataset or load_dataset(options)
    sizes = data.sizes()
    log(f"train: {sum(sizes.values())} prompts after decontamination and de-duplication {sizes}")
    examples = list(data.examples)
    features = featurize(paths, examples, options, log)
    fitted = fit_and_report(examples, features, data, options, target, log)
    append_head(paths.encoder_fp32, paths.router_fp32, fitted.head)
    append_head(paths.encoder_int8, paths.router_int8, fitted.head)
    save_scores(paths.scores, fitted.picked, fitted.scores)
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recipe_sha256": recipe_sha256(paths, data, options),
        "model": {
            **read_json(paths.export_stamp)["source"],
            "encoder": "minilm",
            "embedding_dim": int(fitted.head.weight.shape[0]),
            "max_tokens": options.max_tokens,
            "head_tokens": options.head_tokens,
            "truncation": "head + tail: first head_tokens and last "
            "max_tokens - head_tokens - 2 tokens, plus [CLS] and [SEP]",
            "features": "int8 encoder, one prompt per run (as served)",
            "files": {
                p.name: file_sha256(p)
                for p in (paths.router_fp32, paths.router_int8, paths.tokenizer)
            },
        },
        **fitted.sections,
        "versions": versions(),
    }
    write_json(paths.card, card)
    log(f"train: done in {time.monotonic() - started:.1f} s")
    return card


def save_scores(
    path: Path,
    picked: dict[str, list[Example]],
    scores: dict[str, np.ndarray[Any, Any]],
) -> None:
    arrays_out: dict[str, np.ndarray[Any, Any]] = {}
    for name, values in scores.items():
        labels, weak, strong = arrays(picked[name])
        arrays_out |= {
            f"{name}_scores": values,
            f"{name}_weak": weak,
            f"{name}_strong": strong,
            f"{name}_labels": labels,
        }
    partial = path.with_name("scores.partial.npz")
    np.savez(partial, **arrays_out)  # type: ignore[arg-type]
    partial.replace(path)


def load_scores(path: Path, split: str) -> calib.Scored:
    """Scores and qualities of ``validation`` or ``test`` saved by :func:`save_scores`."""
    with np.load(path) as data:
        return calib.Scored(
            scores=data[f"{split}_scores"],
            weak=data[f"{split}_weak"],
            strong=data[f"{split}_strong"],
        )


def run_calibrate(
    paths: ArtifactPaths, target: calib.Target, *, log: Log = quiet
) -> dict[str, Any]:
    """Re-choose the threshold for ``target`` on validation; updates and returns the card."""
    _require((paths.card, paths.scores), "run `tierroute classifier train` first")
    card = read_json(paths.card)
    validation = load_scores(paths.scores, "validation")
    test = load_scores(paths.scores, "test")
    card["calibration"] = calib.calibration(validation, test, target)
    card["threshold_table"] = calib.threshold_table(validation, target.weak_cost_ratio)
    write_json(paths.card, card)
    chosen = card["calibration"]
    log(
        f"calibrate: threshold {chosen['threshold']:.4f} for {target.kind} {target.value}: "
        f"validation strong share {chosen['validation']['strong_share']:.3f}, "
        f"quality {chosen['validation']['quality_vs_strong']:.3f} of strong"
    )
    return card


def _artifact_current(paths: ArtifactPaths, recipe: str) -> bool:
    if not (paths.card.is_file() and paths.scores.is_file()):
        return False
    card = read_json(paths.card)
    if card.get("recipe_sha256") != recipe:
        return False
    files = card.get("model", {}).get("files", {})
    for path in (paths.router_fp32, paths.router_int8, paths.tokenizer):
        if not path.is_file() or files.get(path.name) != file_sha256(path):
            return False
    return True


def build(
    paths: ArtifactPaths,
    options: TrainOptions | None = None,
    target: calib.Target = DEFAULT_TARGET,
    *,
    force: bool = False,
    log: Log = quiet,
) -> dict[str, Any]:
    """Export, train and calibrate as needed (idempotent); returns the card."""
    options = options or TrainOptions()
    started = time.monotonic()
    exported = run_export(paths, force=force, log=log)
    dataset = load_dataset(options)
    recipe = recipe_sha256(paths, dataset, options)
    if force or exported or not _artifact_current(paths, recipe):
        card = run_train(paths, options, target, dataset=dataset, log=log)
    elif read_json(paths.card).get("calibration", {}).get("target") != target.to_json():
        card = run_calibrate(paths, target, log=log)
    else:
        log("train: up to date")
        card = read_json(paths.card)
    log(f"build: {paths.root} ready in {time.monotonic() - started:.1f} s")
    return card
