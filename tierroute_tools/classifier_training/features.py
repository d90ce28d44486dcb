"""Features for the head: embeddings from the same int8 ONNX encoder and tokenizer that serve.

Each prompt runs alone (batch of one), exactly as an unbatched serving call does: dynamic int8
quantisation scales activations per run, so batching would make a prompt's embedding depend on
its batch-mates. Batching buys little on this CPU at the serving truncation budget anyway. Runs
spread over ``workers`` threads sharing one session (onnxruntime runs are thread-safe).

Embeddings are cached on disk, keyed by the encoder, tokenizer, truncation and prompts, so a
re-run of ``train`` or ``build`` with unchanged inputs skips this, the slow step.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from router_svc.classifier import create_session
from tierroute.classifier_artifact import (
    ATTENTION_MASK,
    EMBEDDING_OUTPUT,
    INPUT_IDS,
    FloatArray,
    PromptEncoder,
    Truncation,
)
from tierroute.outcomes import prompt_key

Progress = Callable[[int, int], None]
"""Called with (done, total) as embeddings complete."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(
    encoder_path: Path, tokenizer_path: Path, truncation: Truncation, prompts: Sequence[str]
) -> str:
    """Identity of one feature matrix: model bytes, tokenizer bytes, truncation, prompt list."""
    digest = hashlib.sha256()
    digest.update(file_sha256(encoder_path).encode())
    digest.update(file_sha256(tokenizer_path).encode())
    digest.update(f"{truncation.max_tokens}/{truncation.head_tokens}".encode())
    for prompt in prompts:
        digest.update(prompt_key(prompt).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:24]


def embed(
    prompts: Sequence[str],
    encoder_path: Path,
    tokenizer_path: Path,
    truncation: Truncation,
    *,
    workers: int = 2,
    progress: Progress | None = None,
) -> FloatArray:
    """Embeddings (len(prompts) x 384, float32) of the int8 encoder, one run per prompt."""
    session = create_session(encoder_path, threads=1)
    encoder = PromptEncoder.from_file(tokenizer_path, truncation)
    result = np.zeros((len(prompts), _output_width(session)), dtype=np.float32)
    chunk = 64
    starts = list(range(0, len(prompts), chunk))

    def run(start: int) -> int:
        stop = min(start + chunk, len(prompts))
        for index, ids in enumerate(encoder.token_ids(prompts[start:stop]), start=start):
            row = np.asarray([ids], dtype=np.int64)
            (embedding,) = session.run(
                [EMBEDDING_OUTPUT], {INPUT_IDS: row, ATTENTION_MASK: np.ones_like(row)}
            )
            result[index] = embedding[0]
        return stop - start

    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for count in pool.map(run, starts):
            done += count
            if progress is not None:
                progress(done, len(prompts))
    return result


def cached_embed(
    prompts: Sequence[str],
    encoder_path: Path,
    tokenizer_path: Path,
    truncation: Truncation,
    cache_dir: Path,
    *,
    workers: int = 2,
    progress: Progress | None = None,
) -> FloatArray:
    """:func:`embed`, reading and writing ``cache_dir/<key>.npy``."""
    key = cache_key(encoder_path, tokenizer_path, truncation, prompts)
    path = cache_dir / f"features-{key}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(prompts):
            return np.asarray(cached, dtype=np.float32)
    features = embed(
        prompts, encoder_path, tokenizer_path, truncation, workers=workers, progress=progress
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npy")
    np.save(partial, features)
    partial.replace(path)
    return features


def _output_width(session: object) -> int:
    for output in session.get_outputs():  # type: ignore[attr-defined]
        if output.name == EMBEDDING_OUTPUT:
            return int(output.shape[-1])
    raise ValueError(f"encoder graph has no {EMBEDDING_OUTPUT!r} output")
