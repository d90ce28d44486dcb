"""The static encoder's real artefact: reproducible build, score parity, idempotency, the card.

Runs against the table distilled from the shipped MiniLM and the head trained on the routing data
(``make prepare`` builds it; the session fixture builds it when missing).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

from router_svc.classifier import ClassifierSettings, load_classifier
from router_svc.encoders.static import StaticClassifier
from tierroute.classifier_artifact import Truncation
from tierroute_tools.classifier_training.artifacts import (
    ArtifactPaths,
    StaticPaths,
    TrainOptions,
    read_json,
)
from tierroute_tools.classifier_training.dataset import Dataset
from tierroute_tools.classifier_training.graph import Head, numpy_head
from tierroute_tools.classifier_training.pipeline import load_dataset, load_scores
from tierroute_tools.classifier_training.static_build import build_static

pytestmark = pytest.mark.timeout(1800)

SENTENCES = [
    "hi",
    "What is the capital of France?",
    "Explain quantum entanglement to a ten-year-old.",
    "def add(a, b):\n    return a + b",
    "Prove that the square root of 2 is irrational.",
    "Summarise the causes of the First World War in three sentences.",
    "Translate 'good morning' into German, French and Spanish.",
    "I have 3 apples and eat one. How many are left?",
]


def test_two_builds_are_byte_identical(static_artifact: StaticPaths, tmp_path: Path) -> None:
    # A second build from scratch (distillation included) into an empty directory.
    fresh = StaticPaths(tmp_path / "static")
    build_static(fresh, force=True, log=print)
    names = sorted(p.name for p in static_artifact.root.iterdir() if p.is_file())
    assert names == sorted(p.name for p in fresh.root.iterdir() if p.is_file())
    assert {"embeddings.npy", "tokenizer.json", "card.json", "distil.json"} <= set(names)
    for name in names:
        assert (fresh.root / name).read_bytes() == (static_artifact.root / name).read_bytes(), name


def test_a_build_with_unchanged_inputs_rewrites_nothing(static_artifact: StaticPaths) -> None:
    files = [p for p in static_artifact.root.iterdir() if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    started = time.monotonic()
    build_static(static_artifact)
    assert time.monotonic() - started < 120  # no distillation, no training
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_serving_scores_equal_the_training_scores(static_artifact: StaticPaths) -> None:
    """The router's scores of the test split are the numbers training saved for it."""
    classifier = StaticClassifier.load(static_artifact.root)
    card = read_json(static_artifact.card)
    dataset = load_dataset_for(card)
    prompts = [e.prompt for e in dataset.split("test")]
    saved = load_scores(static_artifact.scores, "test").scores
    served = classifier.score_batch(prompts)
    np.testing.assert_allclose(served, saved, atol=1e-6)
    one_by_one = np.array([classifier.score_one(p) for p in prompts[:200]])
    np.testing.assert_allclose(one_by_one, saved[:200], atol=1e-6)


def load_dataset_for(card: dict[str, Any]) -> Dataset:
    """The routing data split as the card's build split it."""
    model = card["model"]
    options = TrainOptions(max_tokens=model["max_tokens"], head_tokens=model["head_tokens"])
    return load_dataset(options)


def test_embeddings_match_model2vec(static_artifact: StaticPaths) -> None:
    """The numpy path computes what model2vec's own StaticModel computes from the same files."""
    from model2vec import StaticModel

    table = np.load(static_artifact.table)
    tokenizer = Tokenizer.from_file(str(static_artifact.tokenizer))
    reference = StaticModel(vectors=table, tokenizer=tokenizer, normalize=True, max_length=None)
    classifier = StaticClassifier.load(static_artifact.root, max_tokens=512, head_tokens=256)
    expected = np.asarray(reference.encode(SENTENCES), dtype=np.float32)
    ours = classifier.embedding.embed_batch(SENTENCES)
    # model2vec averages in float16, the router in float32.
    np.testing.assert_allclose(ours, expected, atol=2e-3)
    head = Head.from_json(read_json(static_artifact.card)["head"])
    np.testing.assert_allclose(
        classifier.score_batch(SENTENCES), numpy_head(expected, head), atol=2e-3
    )


def test_the_router_loads_it_by_default(static_artifact: StaticPaths) -> None:
    classifier = load_classifier(ClassifierSettings(static_dir=static_artifact.root))
    assert isinstance(classifier, StaticClassifier)
    card = read_json(static_artifact.card)
    assert classifier.default_threshold == card["calibration"]["threshold"]
    assert classifier.embedding.truncation == Truncation(
        card["model"]["max_tokens"], card["model"]["head_tokens"]
    )
    vectors = np.stack([classifier.embed(s) for s in SENTENCES])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({round(float(classifier.score_one(s)), 6) for s in SENTENCES}) == len(SENTENCES)


def test_static_routes_about_as_well_as_minilm(
    static_artifact: StaticPaths, artifact: ArtifactPaths
) -> None:
    """Test-split APGR within 0.02 of MiniLM's; both beat random (APGR 0.5)."""
    static = read_json(static_artifact.card)["test"]
    minilm = json.loads(artifact.card.read_text())["test"]
    assert static["apgr"] > 0.5 and static["auroc"] > 0.5
    assert static["apgr"] >= minilm["apgr"] - 0.02
