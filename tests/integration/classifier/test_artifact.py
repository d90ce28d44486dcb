"""The built artefact: export parity, the head inside the graph, reproducibility, the card.

Runs against the real exported MiniLM encoder and the head trained on the routing data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tierroute import routing_metrics
from tierroute.classifier_artifact import ATTENTION_MASK, INPUT_IDS, PromptEncoder, Truncation
from tierroute.outcomes import load_routellm
from tierroute_tools.classifier_training.artifacts import read_json
from tierroute_tools.classifier_training.calibrate import Target
from tierroute_tools.classifier_training.dataset import build_dataset
from tierroute_tools.classifier_training.export import export_encoder, quantize_int8
from tierroute_tools.classifier_training.features import cached_embed, file_sha256
from tierroute_tools.classifier_training.graph import Head, numpy_head
from tierroute_tools.classifier_training.pipeline import ArtifactPaths, run_calibrate
from tierroute_tools.classifier_training.train import fit_head

pytestmark = pytest.mark.timeout(1200)

# A fixed, varied sentence set: greetings, facts, code, maths, long questions.
SENTENCES = [
    "hi",
    "Hello! How are you today?",
    "thanks",
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "Explain quantum entanglement to a ten-year-old.",
    "def add(a, b):\n    return a + b",
    "Write a haiku about autumn leaves.",
    "Prove that the square root of 2 is irrational.",
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast. How many are left?",
    "Translate 'good morning' into German.",
    "SELECT name FROM users WHERE age > 30;",
    "Summarize the causes of the First World War in three bullet points.",
    "The mitochondria is the powerhouse of the cell.",
    "Which of the following is a prime number?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:",
    "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural "
    "experiences and must-see attractions.",
    "I need a recipe for vegan lasagna that serves six.",
    "What's the weather like on Mars?",
    "A train leaves Chicago at 3 pm at 60 mph; another leaves New York at 4 pm at 80 mph. "
    "When do they meet if the cities are 790 miles apart?",
    "List three differences between TCP and UDP.",
]


def card_of(paths: ArtifactPaths) -> dict[str, object]:
    return read_json(paths.card)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_one(sess: ort.InferenceSession, encoder: PromptEncoder, text: str) -> list[np.ndarray]:
    ids, mask = encoder.encode([text])
    return sess.run(None, {INPUT_IDS: ids, ATTENTION_MASK: mask})  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def encoder(artifact: ArtifactPaths) -> PromptEncoder:
    model = card_of(artifact)["model"]
    assert isinstance(model, dict)
    truncation = Truncation(model["max_tokens"], model["head_tokens"])
    return PromptEncoder.from_file(artifact.tokenizer, truncation)


def test_int8_embeddings_match_fp32(artifact: ArtifactPaths, encoder: PromptEncoder) -> None:
    fp32, int8 = session(artifact.router_fp32), session(artifact.router_int8)
    cosines = []
    for text in SENTENCES:
        a = run_one(fp32, encoder, text)[1][0]
        b = run_one(int8, encoder, text)[1][0]
        cosines.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    # Per-channel int8: mean 0.99+; the shortest inputs lose most (about 0.97).
    assert np.mean(cosines) >= 0.99
    assert min(cosines) >= 0.95


def test_fp32_graph_matches_the_torch_model(
    artifact: ArtifactPaths, encoder: PromptEncoder
) -> None:
    import torch
    from transformers import AutoModel

    from tierroute_tools.classifier_training.export import minilm_dir

    model = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager").eval()
    ids, mask = encoder.encode(SENTENCES)  # a padded batch: the mask must be honoured
    with torch.no_grad():
        hidden = model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
    weights = torch.from_numpy(mask).unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=1)
    _, embedding = session(artifact.router_fp32).run(None, {INPUT_IDS: ids, ATTENTION_MASK: mask})
    np.testing.assert_allclose(embedding, reference.numpy(), atol=1e-5)


@pytest.mark.parametrize("model", ["router_fp32", "router_int8"])
def test_head_inside_the_graph_equals_the_numpy_head(
    artifact: ArtifactPaths, encoder: PromptEncoder, model: str
) -> None:
    head_json = card_of(artifact)["head"]
    assert isinstance(head_json, dict)
    head = Head.from_json(head_json)
    sess = session(getattr(artifact, model))
    for text in SENTENCES:
        probability, embedding = run_one(sess, encoder, text)
        np.testing.assert_allclose(probability, numpy_head(embedding, head), atol=1e-6)
    # ... and for a padded batch with dynamic batch and sequence axes.
    ids, mask = encoder.encode(SENTENCES[:5])
    probability, embedding = sess.run(None, {INPUT_IDS: ids, ATTENTION_MASK: mask})
    assert probability.shape == (5,)
    np.testing.assert_allclose(probability, numpy_head(embedding, head), atol=1e-6)


def test_retraining_reproduces_the_shipped_head(artifact: ArtifactPaths) -> None:
    card = card_of(artifact)
    head_json, model = card["head"], card["model"]
    assert isinstance(head_json, dict) and isinstance(model, dict)
    dataset = build_dataset(load_routellm())
    train = dataset.split("train")
    features = cached_embed(
        [e.prompt for e in dataset.examples],
        artifact.encoder_int8,
        artifact.tokenizer,
        Truncation(model["max_tokens"], model["head_tokens"]),
        artifact.features,
    )
    mask = np.array([e.split == "train" for e in dataset.examples])
    labels = np.array([e.label for e in train])
    head = fit_head(features[mask], labels, head_json["c"])
    np.testing.assert_array_equal(head.weight, Head.from_json(head_json).weight)


def test_export_is_byte_for_byte_reproducible(artifact: ArtifactPaths, tmp_path: Path) -> None:
    export_encoder(tmp_path / "encoder.onnx")
    quantize_int8(tmp_path / "encoder.onnx", tmp_path / "encoder.int8.onnx")
    stamp = read_json(artifact.export_stamp)["files"]
    assert file_sha256(tmp_path / "encoder.onnx") == stamp["encoder.onnx"]
    assert file_sha256(tmp_path / "encoder.int8.onnx") == stamp["encoder.int8.onnx"]


def test_card_reports_a_router_better_than_random(artifact: ArtifactPaths) -> None:
    card = card_of(artifact)
    split, validation, test = card["split"], card["validation"], card["test"]
    assert isinstance(split, dict) and isinstance(validation, dict) and isinstance(test, dict)
    assert sum(split["sizes"].values()) == len(build_dataset(load_routellm()).examples)
    for metrics in (validation, test):
        assert metrics["auroc"] > 0.55 and metrics["apgr"] > 0.55
    calibration = card["calibration"]
    assert isinstance(calibration, dict)
    point = calibration["test"]
    assert point["quality"] > point["random_quality"]


def test_calibration_hits_its_target_on_validation(artifact: ArtifactPaths, tmp_path: Path) -> None:
    card = card_of(artifact)
    calibration = card["calibration"]
    assert isinstance(calibration, dict)
    target = calibration["target"]
    assert target["kind"] == "quality"
    chosen = calibration["validation"]["quality_vs_strong"]
    assert target["value"] <= chosen <= target["value"] + 0.005
    # Re-calibrate a copy for a cost target; the shipped card stays untouched.
    copy = ArtifactPaths(tmp_path)
    shutil.copy(artifact.card, copy.card)
    shutil.copy(artifact.scores, copy.scores)
    updated = run_calibrate(copy, Target("cost_reduction", 0.6))
    point = updated["calibration"]["validation"]
    n = card["split"]["sizes"]["validation"]  # type: ignore[index]
    assert 0.6 <= point["cost_reduction"] <= 0.6 + 1.5 / n
    assert json.loads(artifact.card.read_text())["calibration"] == calibration
    assert updated["calibration"]["threshold"] != calibration["threshold"]


def test_card_scores_match_the_routing_metrics(artifact: ArtifactPaths) -> None:
    with np.load(artifact.scores) as data:
        scores, weak, strong = data["test_scores"], data["test_weak"], data["test_strong"]
        labels = data["test_labels"]
    test = card_of(artifact)["test"]
    assert isinstance(test, dict)
    assert routing_metrics.auroc(scores, labels) == pytest.approx(test["auroc"])
    curve = routing_metrics.routing_curve(scores, weak, strong)
    assert routing_metrics.apgr(curve) == pytest.approx(test["apgr"])
