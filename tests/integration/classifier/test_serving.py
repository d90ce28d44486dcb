"""The serving classifier on the real artefact: same score as the offline pipeline, async."""

from __future__ import annotations

import argparse
import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from router_svc.classifier import ClassifierSettings, OnnxClassifier
from tierroute_tools.classifier_training.artifacts import StaticPaths, read_json
from tierroute_tools.classifier_training.features import embed
from tierroute_tools.classifier_training.graph import Head, numpy_head
from tierroute_tools.classifier_training.pipeline import ArtifactPaths
from tierroute_tools.commands import classifier as command

PROMPTS = [
    "Hello!",
    "What is the capital of France?",
    "Prove that there are infinitely many primes.",
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. How many eggs does she sell?",
    # Few-shot style: a long shared preamble, the question at the end (head + tail kept).
    "The following are multiple choice questions about astronomy.\n\n"
    + "Q: Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer: B\n\n" * 40
    + "Q: Why is Mars red?\nA. Iron oxide\nB. Ice\nAnswer:",
    "x" * 20000,
]


@pytest.fixture(scope="module")
async def classifier(artifact: ArtifactPaths) -> AsyncIterator[OnnxClassifier]:
    loaded = OnnxClassifier.load(ClassifierSettings())  # the default artefact location
    yield loaded
    loaded.close()


def offline_scores(artifact: ArtifactPaths, classifier: OnnxClassifier) -> np.ndarray:
    """The training pipeline's view: int8 encoder features, then the numpy head."""
    head_json = read_json(artifact.card)["head"]
    features = embed(
        PROMPTS, artifact.encoder_int8, artifact.tokenizer, classifier.encoder.truncation
    )
    return numpy_head(features, Head.from_json(head_json))


async def test_served_score_equals_offline_pipeline(
    artifact: ArtifactPaths, classifier: OnnxClassifier
) -> None:
    expected = offline_scores(artifact, classifier)
    served = [await classifier.score(p) for p in PROMPTS]
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert all(0.0 <= s <= 1.0 for s in served)


async def test_concurrent_scores_equal_single_scores(classifier: OnnxClassifier) -> None:
    singles = [await classifier.score(p) for p in PROMPTS]
    together = await asyncio.gather(*(classifier.score(p) for p in PROMPTS * 8))
    # "rows" batches: a prompt's score does not depend on what it was batched with.
    assert together == singles * 8


async def test_threshold_and_truncation_come_from_the_card(
    artifact: ArtifactPaths, classifier: OnnxClassifier
) -> None:
    card = read_json(artifact.card)
    assert classifier.default_threshold == card["calibration"]["threshold"]
    assert classifier.encoder.truncation.max_tokens == card["model"]["max_tokens"]
    assert 0.0 < classifier.default_threshold < 1.0


async def test_embeddings_are_unit_vectors(classifier: OnnxClassifier) -> None:
    vectors = await classifier.embed(["Hello!", "What is an atom?"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_calibrate_command_updates_the_card(
    artifact: ArtifactPaths, static_artifact: StaticPaths, tmp_path: Path
) -> None:
    shutil.copy(artifact.card, tmp_path / "card.json")
    shutil.copy(artifact.scores, tmp_path / "scores.npz")
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "classifier",
            "calibrate",
            "--encoder",
            "minilm",
            "--out",
            str(tmp_path),
            "--target-cost-reduction",
            "0.5",
        ]
    )
    assert args.func(args) == 0
    chosen = read_json(tmp_path / "card.json")["calibration"]
    assert chosen["target"]["kind"] == "cost_reduction"
    assert chosen["validation"]["strong_share"] <= 0.5
    missing = parser.parse_args(
        ["classifier", "calibrate", "--out", str(tmp_path / "none"), "--target-quality", "0.9"]
    )
    assert missing.func(missing) == 1  # a clear message instead of a traceback
    # The default encoder is the static one: its card is calibrated the same way.
    static = tmp_path / "static"
    static.mkdir()
    shutil.copy(static_artifact.card, static / "card.json")
    shutil.copy(static_artifact.scores, static / "scores.npz")
    args = parser.parse_args(
        ["classifier", "calibrate", "--out", str(tmp_path), "--target-cost-reduction", "0.5"]
    )
    assert args.func(args) == 0
    chosen = read_json(static / "card.json")["calibration"]
    assert chosen["target"]["kind"] == "cost_reduction"
    assert chosen["validation"]["strong_share"] <= 0.5
