"""The head appended to a graph computes exactly the numpy head (on a tiny stand-in encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tierroute.classifier_artifact import EMBEDDING_OUTPUT, PROBABILITY_OUTPUT
from tierroute_tools.classifier_training.graph import Head, append_head, numpy_head

DIM = 8


def tiny_encoder(path: Path, dim: int = DIM) -> None:
    """A graph whose ``embedding`` output is its float input (stands in for the encoder)."""
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])
    embedding = helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", dim])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], [EMBEDDING_OUTPUT])],
        "tiny",
        [features],
        [embedding],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_in_graph_head_equals_numpy_head(tmp_path: Path) -> None:
    tiny_encoder(tmp_path / "enc.onnx")
    rng = np.random.default_rng(0)
    head = Head(weight=rng.normal(size=DIM).astype(np.float32), bias=-0.3)
    append_head(tmp_path / "enc.onnx", tmp_path / "router.onnx", head)
    session = ort.InferenceSession(
        str(tmp_path / "router.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [o.name for o in session.get_outputs()] == [PROBABILITY_OUTPUT, EMBEDDING_OUTPUT]
    x = rng.normal(size=(5, DIM)).astype(np.float32)
    probability, embedding = session.run(None, {"features": x})
    assert probability.shape == (5,)
    np.testing.assert_array_equal(embedding, x)
    np.testing.assert_allclose(probability, numpy_head(x, head), rtol=0, atol=1e-6)


def test_head_round_trips_through_json() -> None:
    head = Head(weight=np.arange(4, dtype=np.float32), bias=0.25)
    again = Head.from_json(head.to_json())
    np.testing.assert_array_equal(again.weight, head.weight)
    assert again.bias == head.bias


def test_head_size_must_match_the_embedding(tmp_path: Path) -> None:
    tiny_encoder(tmp_path / "enc.onnx")
    head = Head(weight=np.zeros(DIM + 1, dtype=np.float32), bias=0.0)
    with pytest.raises(ValueError, match="dimensions"):
        append_head(tmp_path / "enc.onnx", tmp_path / "router.onnx", head)


def test_graph_without_embedding_output_is_refused(tmp_path: Path) -> None:
    tiny_encoder(tmp_path / "enc.onnx")
    head = Head(weight=np.zeros(DIM, dtype=np.float32), bias=0.0)
    append_head(tmp_path / "enc.onnx", tmp_path / "once.onnx", head)
    with pytest.raises(ValueError, match="expected one output"):
        append_head(tmp_path / "once.onnx", tmp_path / "twice.onnx", head)
