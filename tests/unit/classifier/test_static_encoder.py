"""The static-embedding classifier with a small random table: pooling, truncation, head, loading,
and the configuration switch between encoders (the real distilled table is in
tests/integration/classifier/test_static_artifact.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer

from router_svc.classifier import (
    ClassifierSettings,
    OnnxClassifier,
    load_classifier,
    load_static_embedding,
)
from router_svc.encoders.static import LogisticHead, StaticClassifier, StaticEmbedding
from tierroute.classifier_artifact import (
    CARD_FILE,
    STATIC_TABLE_FILE,
    TOKENIZER_FILE,
    Truncation,
    default_static_dir,
)

DIM = 8


def write_artifact(directory: Path, tokenizer_path: Path, *, max_tokens: int = 16) -> np.ndarray:
    """A static artefact with a seeded random table and head; returns the table."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    rng = np.random.default_rng(7)
    table = rng.standard_normal((tokenizer.get_vocab_size(), DIM)).astype(np.float16)
    np.save(directory / STATIC_TABLE_FILE, table)
    tokenizer.save(str(directory / TOKENIZER_FILE))
    card = {
        "model": {"encoder": "static", "max_tokens": max_tokens, "head_tokens": 4},
        "calibration": {"threshold": 0.6},
        "head": {"weight": [float(v) for v in rng.standard_normal(DIM)], "bias": 0.25},
    }
    (directory / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    return table


@pytest.fixture
def artifact(tmp_path: Path, tokenizer_path: Path) -> tuple[Path, np.ndarray]:
    table = write_artifact(tmp_path / "static", tokenizer_path)
    return tmp_path / "static", table


def plain_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer without the file's fixed padding and truncation (at 128 tokens)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def reference_embedding(tokenizer_path: Path, table: np.ndarray, text: str) -> np.ndarray:
    """Mean of the token vectors, L2-normalised, computed the plain way (float64)."""
    ids = plain_tokenizer(tokenizer_path).encode(text, add_special_tokens=False).ids
    mean = table[ids].astype(np.float64).mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_embedding_is_the_normalised_mean_of_token_vectors(
    artifact: tuple[Path, np.ndarray], tokenizer_path: Path
) -> None:
    directory, table = artifact
    embedding = StaticEmbedding.load(directory, Truncation(64, 8))
    text = "What is the capital of France?"
    vector = embedding.embed(text)
    assert vector.shape == (DIM,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector, reference_embedding(tokenizer_path, table, text), atol=1e-6)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    batch = embedding.embed_batch([text, "Hello there"])
    np.testing.assert_allclose(batch[0], vector, atol=1e-7)


def test_long_prompts_keep_head_and_tail_tokens(
    artifact: tuple[Path, np.ndarray], tokenizer_path: Path
) -> None:
    embedding = StaticEmbedding.load(artifact[0], Truncation(10, 3))
    words = [f"word{i}" for i in range(400)]
    text = " ".join(words)
    ids = embedding.token_ids([text])[0]
    full = plain_tokenizer(tokenizer_path).encode(text, add_special_tokens=False).ids
    assert ids == full[:3] + full[-7:]
    # The raw text was cut before tokenising, yet the kept tokens are the same.
    assert len(embedding.cut_text(text)) < len(text)


def test_empty_text_scores_the_bias(artifact: tuple[Path, np.ndarray]) -> None:
    classifier = StaticClassifier.load(artifact[0])
    assert not classifier.embed("").any()
    assert classifier.score_one("") == pytest.approx(1 / (1 + np.exp(-0.25)), abs=1e-6)


async def test_score_equals_head_on_embedding(artifact: tuple[Path, np.ndarray]) -> None:
    classifier = StaticClassifier.load(artifact[0])
    texts = ["Prove that sqrt(2) is irrational.", "hi", "Write a haiku about rain."]
    head = LogisticHead.from_card(classifier.card)
    expected = 1 / (1 + np.exp(-(classifier.embedding.embed_batch(texts) @ head.weight + 0.25)))
    batch = classifier.score_batch(texts)
    np.testing.assert_allclose(batch, expected, atol=1e-6)
    singles = [await classifier.score(t) for t in texts]
    np.testing.assert_allclose(singles, batch, atol=1e-6)
    assert classifier.default_threshold == 0.6


def test_card_budget_applies_unless_overridden(artifact: tuple[Path, np.ndarray]) -> None:
    assert StaticClassifier.load(artifact[0]).embedding.truncation == Truncation(16, 4)
    overridden = StaticClassifier.load(artifact[0], max_tokens=32, head_tokens=0)
    assert overridden.embedding.truncation == Truncation(32, 0)


def test_missing_artifact_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tierroute classifier build"):
        StaticClassifier.load(tmp_path)


def test_mismatched_head_is_refused(tmp_path: Path, tokenizer_path: Path) -> None:
    write_artifact(tmp_path, tokenizer_path)
    card = json.loads((tmp_path / CARD_FILE).read_text())
    card["head"]["weight"] = [0.0] * (DIM + 1)
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="weights"):
        StaticClassifier.load(tmp_path)


def test_configuration_switches_encoders(artifact: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    static = load_classifier(ClassifierSettings(static_dir=artifact[0]))
    assert isinstance(static, StaticClassifier)
    # MiniLM by configuration: its (absent) ONNX artefact is what gets loaded.
    settings = ClassifierSettings(encoder="minilm", model_path=tmp_path / "none" / "router.onnx")
    with pytest.raises(FileNotFoundError, match=r"none/router\.onnx"):
        load_classifier(settings)
    assert ClassifierSettings().encoder == "static"
    assert ClassifierSettings().resolved_static_dir() == default_static_dir()
    with pytest.raises(ValidationError):
        ClassifierSettings(encoder="bert")  # type: ignore[arg-type]
    # The static embedding stays available with MiniLM scoring.
    embedding = load_static_embedding(ClassifierSettings(encoder="minilm", static_dir=artifact[0]))
    assert embedding.embed("hello").shape == (DIM,)
    assert issubclass(OnnxClassifier, object)
