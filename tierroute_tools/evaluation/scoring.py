"""Scores of the shipped router classifier for many prompts, cached on disk.

Each prompt runs alone through the same ONNX graph and tokenizer the router serves (a batch of
one, as an unbatched serving call: the int8 graph quantises activations per run, so batch-mates
would shift a prompt's score slightly). Scores are cached under
``$TIERROUTE_CACHE_DIR/eval/scores/`` keyed by the model file and the prompts, so replaying the
same data again skips the scoring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import prompt_key
from tierroute_tools.modelprep.paths import default_cache_dir

Array = npt.NDArray[np.float64]


def eval_dir() -> Path:
    """``$TIERROUTE_CACHE_DIR/eval``: where evaluation runs write their results."""
    return default_cache_dir() / "eval"


@dataclass(frozen=True)
class ClassifierScores:
    """Scores of a prompt list and the classifier's calibrated threshold."""

    scores: Array
    threshold: float
    model_path: Path
    card: dict[str, Any]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(model_sha: str, truncation: str, prompts: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{model_sha}/{truncation}".encode())
    for prompt in prompts:
        digest.update(prompt_key(prompt).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:24]


def classifier_scores(
    prompts: Sequence[str],
    model_path: Path | None = None,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ClassifierScores:
    """Scores of ``prompts`` from the router's classifier (default: the built artefact)."""
    from router_svc.classifier import ClassifierSettings, OnnxClassifier

    settings = ClassifierSettings(model_path=model_path, threads=1, workers=1)
    classifier = OnnxClassifier.load(settings)
    try:
        resolved = settings.resolved_model_path()
        truncation = classifier.encoder.truncation
        key = _key(
            _file_sha256(resolved),
            f"{truncation.max_tokens}/{truncation.head_tokens}",
            prompts,
        )
        folder = cache_dir or eval_dir() / "scores"
        path = folder / f"scores-{key}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape == (len(prompts),):
                return ClassifierScores(
                    cached.astype(np.float64),
                    classifier.default_threshold,
                    resolved,
                    classifier.card.raw,
                )
        scores = np.empty(len(prompts), dtype=np.float64)
        for index, prompt in enumerate(_progress(prompts, progress, "classifier scores")):
            scores[index] = float(classifier.score_batch([prompt])[0])
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, scores)
        partial.replace(path)
        return ClassifierScores(scores, classifier.default_threshold, resolved, classifier.card.raw)
    finally:
        classifier.close()


def _progress(items: Sequence[str], enabled: bool, label: str) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="prompt", leave=False)
