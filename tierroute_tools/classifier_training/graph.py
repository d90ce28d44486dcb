"""Append the trained logistic head to an encoder graph: one session run returns the probability.

The head is ``sigmoid(embedding @ weight + bias)`` as MatMul + Add + Sigmoid, then a Reshape to
one value per prompt, output ``probability``. The ``embedding`` output stays, so the same file
serves the router's embedding needs and the tests comparing the graph with the numpy head.
The head stays in fp32 in both variants: it is appended after quantisation, so the in-graph
head computes exactly what :func:`numpy_head` computes on the graph's own embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierroute.classifier_artifact import EMBEDDING_OUTPUT, PROBABILITY_OUTPUT


@dataclass(frozen=True)
class Head:
    """A logistic head over the embedding."""

    weight: npt.NDArray[np.float32]
    """Shape (embedding_dim,)."""
    bias: float

    def to_json(self) -> dict[str, object]:
        """Weights as plain numbers (for the card)."""
        return {"weight": [float(v) for v in self.weight], "bias": float(self.bias)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Head:
        """Inverse of :meth:`to_json`."""
        weight = np.asarray(data["weight"], dtype=np.float32)
        bias = data["bias"]
        if not isinstance(bias, int | float):
            raise ValueError("head bias must be a number")
        return cls(weight=weight, bias=float(bias))


def numpy_head(embeddings: npt.NDArray[np.float32], head: Head) -> npt.NDArray[np.float32]:
    """The head in numpy, in float32 like the graph: sigmoid(E @ w + b)."""
    logits = embeddings.astype(np.float32) @ head.weight.astype(np.float32) + np.float32(head.bias)
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)


def append_head(encoder_path: Path, out_path: Path, head: Head) -> None:
    """Write ``encoder_path`` + head to ``out_path`` (outputs: probability, embedding)."""
    model = onnx.load(str(encoder_path))
    graph = model.graph
    outputs = [o.name for o in graph.output]
    if outputs != [EMBEDDING_OUTPUT]:
        raise ValueError(f"{encoder_path}: expected one output {EMBEDDING_OUTPUT!r}, has {outputs}")
    dim = int(head.weight.shape[0])
    declared = graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if declared and declared != dim:
        raise ValueError(f"head has {dim} weights, the embedding {declared} dimensions")
    graph.initializer.extend(
        [
            numpy_helper.from_array(head.weight.astype(np.float32).reshape(dim, 1), "head_weight"),
            numpy_helper.from_array(np.array([head.bias], dtype=np.float32), "head_bias"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "head_shape"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("MatMul", [EMBEDDING_OUTPUT, "head_weight"], ["head_matmul"]),
            helper.make_node("Add", ["head_matmul", "head_bias"], ["head_logit"]),
            helper.make_node("Sigmoid", ["head_logit"], ["head_sigmoid"]),
            helper.make_node("Reshape", ["head_sigmoid", "head_shape"], [PROBABILITY_OUTPUT]),
        ]
    )
    probability = helper.make_tensor_value_info(PROBABILITY_OUTPUT, TensorProto.FLOAT, ["batch"])
    embedding = graph.output[0]
    del graph.output[:]
    graph.output.extend([probability, embedding])
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    onnx.save(model, str(partial))
    partial.replace(out_path)
