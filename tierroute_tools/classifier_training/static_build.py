"""Build the static encoder's artefact: distil, embed, train the head, calibrate (idempotent).

Into ``<artefact directory>/static/`` (see :class:`.artifacts.StaticPaths`). Features come from
the serving class itself (:class:`router_svc.encoders.static.StaticEmbedding`), so the head is
trained on exactly what the router computes; embedding the ~13k routing prompts takes seconds.
The card carries the head (weights and bias) and no timestamp: two builds from the same inputs
write byte-identical files (tested), and a build whose inputs have not changed rewrites nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from router_svc.encoders.static import StaticEmbedding
from tierroute.classifier_artifact import ENCODER_STATIC
from tierroute_tools.classifier_training import calibrate as calib
from tierroute_tools.classifier_training.artifacts import (
    CARD_FORMAT,
    DEFAULT_TARGET,
    Log,
    StaticPaths,
    TrainOptions,
    quiet,
    read_json,
    versions,
    write_json,
)
from tierroute_tools.classifier_training.dataset import Dataset
from tierroute_tools.classifier_training.features import file_sha256
from tierroute_tools.classifier_training.pipeline import (
    fit_and_report,
    load_dataset,
    load_scores,
    save_scores,
)

FEATURE_CHUNK = 1024


def run_distil(paths: StaticPaths, *, force: bool = False, log: Log = quiet) -> bool:
    """Distil the table and tokenizer; False when already up to date."""
    from tierroute_tools.classifier_training import distil

    source = distil.distil_source()
    files = (paths.table, paths.tokenizer)
    if not force and paths.stamp.is_file() and all(f.is_file() for f in files):
        stamp = read_json(paths.stamp)
        if stamp.get("source") == source and stamp.get("files") == {
            f.name: file_sha256(f) for f in files
        }:
            log("distil: up to date")
            return False
    started = time.monotonic()
    shape = distil.distil_table(paths.root, log)
    write_json(
        paths.stamp,
        {
            "source": source,
            "shape": list(shape),
            "files": {f.name: file_sha256(f) for f in files},
        },
    )
    log(f"distil: done in {time.monotonic() - started:.1f} s")
    return True


def static_features(
    embedding: StaticEmbedding, prompts: list[str], log: Log = quiet
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Embeddings of ``prompts`` by the serving class, with progress every ~10%."""
    result = np.zeros((len(prompts), embedding.dimensions), dtype=np.float32)
    step = max(FEATURE_CHUNK, len(prompts) // 10)
    for start in range(0, len(prompts), FEATURE_CHUNK):
        stop = min(start + FEATURE_CHUNK, len(prompts))
        result[start:stop] = embedding.embed_batch(prompts[start:stop])
        if stop == len(prompts) or stop // step != start // step:
            log(f"features: {stop}/{len(prompts)} prompts embedded")
    return result


def static_recipe(paths: StaticPaths, dataset: Dataset, options: TrainOptions) -> str:
    """Identity of a static training run's inputs (table, tokenizer, data, options)."""
    recipe = {
        "encoder": ENCODER_STATIC,
        "table": file_sha256(paths.table),
        "tokenizer": file_sha256(paths.tokenizer),
        "data": dataset.data_sha256,
        "options": {k: v for k, v in asdict(options).items() if k not in ("data_dir", "workers")},
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def run_static_train(
    paths: StaticPaths,
    options: TrainOptions,
    target: calib.Target = DEFAULT_TARGET,
    *,
    dataset: Dataset | None = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Train the head on the static embeddings, write the scores and the card; returns it."""
    for required in (paths.table, paths.tokenizer, paths.stamp):
        if not required.is_file():
            raise FileNotFoundError(f"missing {required}: run `tierroute classifier build`")
    started = time.monotonic()
    data = dataset or load_dataset(options)
    examples = list(data.examples)
    embedding = StaticEmbedding.load(paths.root, options.truncation)
    features = static_features(embedding, [e.prompt for e in examples], log)
    fitted = fit_and_report(examples, features, data, options, target, log)
    save_scores(paths.scores, fitted.picked, fitted.scores)
    stamp = read_json(paths.stamp)
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "recipe_sha256": static_recipe(paths, data, options),
        "model": {
            **stamp["source"],
            "encoder": ENCODER_STATIC,
            "embedding_dim": embedding.dimensions,
            "vocabulary": int(stamp["shape"][0]),
            "max_tokens": options.max_tokens,
            "head_tokens": options.head_tokens,
            "truncation": "head + tail: first head_tokens and last max_tokens - head_tokens "
            "tokens (no special tokens)",
            "features": "mean of the kept tokens' vectors, L2-normalised (as served)",
            "files": {p.name: file_sha256(p) for p in (paths.table, paths.tokenizer)},
        },
        **fitted.sections,
        "versions": versions(),
    }
    write_json(paths.card, card)
    log(f"train: static head done in {time.monotonic() - started:.1f} s")
    return card


def run_static_calibrate(
    paths: StaticPaths, target: calib.Target, *, log: Log = quiet
) -> dict[str, Any]:
    """Re-choose the static head's threshold for ``target`` on validation; updates the card."""
    for required in (paths.card, paths.scores):
        if not required.is_file():
            raise FileNotFoundError(f"missing {required}: run `tierroute classifier build`")
    card = read_json(paths.card)
    validation, test = load_scores(paths.scores, "validation"), load_scores(paths.scores, "test")
    card["calibration"] = calib.calibration(validation, test, target)
    card["threshold_table"] = calib.threshold_table(validation, target.weak_cost_ratio)
    write_json(paths.card, card)
    log(f"calibrate: static threshold {card['calibration']['threshold']:.4f}")
    return card


def _current(paths: StaticPaths, recipe: str) -> bool:
    if not (paths.card.is_file() and paths.scores.is_file()):
        return False
    card = read_json(paths.card)
    if card.get("recipe_sha256") != recipe:
        return False
    files = card.get("model", {}).get("files", {})
    return all(
        p.is_file() and files.get(p.name) == file_sha256(p) for p in (paths.table, paths.tokenizer)
    )


def build_static(
    paths: StaticPaths,
    options: TrainOptions | None = None,
    target: calib.Target = DEFAULT_TARGET,
    *,
    force: bool = False,
    log: Log = quiet,
) -> dict[str, Any]:
    """Distil, train and calibrate as needed (idempotent); returns the card."""
    options = options or TrainOptions()
    started = time.monotonic()
    distilled = run_distil(paths, force=force, log=log)
    dataset = load_dataset(options)
    recipe = static_recipe(paths, dataset, options)
    if force or distilled or not _current(paths, recipe):
        card = run_static_train(paths, options, target, dataset=dataset, log=log)
    elif read_json(paths.card).get("calibration", {}).get("target") != target.to_json():
        card = run_static_calibrate(paths, target, log=log)
    else:
        log("train: static head up to date")
        card = read_json(paths.card)
    log(f"build: {paths.root} ready in {time.monotonic() - started:.1f} s")
    return card
