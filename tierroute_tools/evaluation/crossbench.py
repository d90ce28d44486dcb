"""Cross-benchmark evaluation: train the classifier head without one benchmark, report on it.

The held-out benchmark never touches training: the head is fitted on the *train* split of the
other benchmarks, its regularisation chosen on their *validation* split, and its threshold
calibrated there too (the fewest strong calls reaching 95% of the strong model's quality).
Then every prompt of the held-out benchmark is scored and replayed. The encoder, tokenizer,
truncation and embeddings are exactly the shipped classifier's (its artefact directory); only
the head differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import BENCHMARKS, STRONG_MODEL, WEAK_MODEL, Outcome
from tierroute_tools.classifier_training.artifacts import ArtifactPaths, TrainOptions
from tierroute_tools.classifier_training.calibrate import Scored, Target, choose_threshold
from tierroute_tools.classifier_training.dataset import Example, arrays
from tierroute_tools.classifier_training.features import cache_key, cached_embed
from tierroute_tools.classifier_training.graph import numpy_head
from tierroute_tools.classifier_training.pipeline import load_dataset
from tierroute_tools.classifier_training.train import select_head

Log = Callable[[str], None]
Array = npt.NDArray[np.float32]
DEFAULT_HELD_OUT: tuple[str, ...] = ("mt_bench", "gsm8k")
DEFAULT_TARGET = Target("quality", 0.95)


@dataclass(frozen=True)
class CrossBenchmark:
    """A head trained without ``held_out`` and its scores on every prompt of ``held_out``."""

    held_out: str
    trained_on: tuple[str, ...]
    c: float
    threshold: float
    """Calibrated on the training benchmarks' validation split (95% quality target)."""
    outcomes: tuple[Outcome, ...]
    scores: npt.NDArray[np.float64]
    train_size: int
    validation_size: int

    def describe(self) -> dict[str, Any]:
        """Facts for the report."""
        return {
            "held_out": self.held_out,
            "trained_on": list(self.trained_on),
            "c": self.c,
            "threshold": self.threshold,
            "train_size": self.train_size,
            "validation_size": self.validation_size,
            "held_out_size": len(self.outcomes),
        }


def _quiet(message: str) -> None:
    del message


def _features(
    paths: ArtifactPaths,
    examples: Sequence[Example],
    options: TrainOptions,
    cache_dir: Path,
    log: Log,
) -> Array:
    """Embeddings of ``examples``: the classifier build's cache when it has them, else ours."""
    prompts = [e.prompt for e in examples]
    key = cache_key(paths.encoder_int8, paths.tokenizer, options.truncation, prompts)
    shipped = paths.features / f"features-{key}.npy"
    if shipped.is_file():
        cached = np.load(shipped)
        if cached.shape[0] == len(prompts):
            return np.asarray(cached, dtype=np.float32)
    log(f"embedding {len(prompts)} prompts with the shipped int8 encoder")
    progress_bar = _bar(len(prompts))

    def progress(done: int, total: int) -> None:
        del total
        progress_bar.update(done - progress_bar.n)

    try:
        return cached_embed(
            prompts,
            paths.encoder_int8,
            paths.tokenizer,
            options.truncation,
            cache_dir,
            workers=options.workers,
            progress=progress,
        )
    finally:
        progress_bar.close()


def _bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="embeddings", unit="prompt", leave=False)


def _outcome(example: Example) -> Outcome:
    return Outcome(
        example.prompt, {STRONG_MODEL: example.strong, WEAK_MODEL: example.weak}, example.source
    )


def _pick(examples: Sequence[Example], mask: npt.NDArray[np.bool_]) -> list[Example]:
    return [e for e, keep in zip(examples, mask, strict=True) if keep]


def train_without(
    held_out: Sequence[str],
    *,
    paths: ArtifactPaths,
    options: TrainOptions,
    cache_dir: Path,
    target: Target = DEFAULT_TARGET,
    log: Log = _quiet,
) -> list[CrossBenchmark]:
    """One head per benchmark in ``held_out``, each trained on all the other benchmarks."""
    unknown = set(held_out) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}; known: {list(BENCHMARKS)}")
    for required in (paths.encoder_int8, paths.tokenizer):
        if not required.is_file():
            raise FileNotFoundError(f"{required} missing: run `tierroute classifier build`")
    dataset = load_dataset(options)
    examples = list(dataset.examples)
    features = _features(paths, examples, options, cache_dir, log)
    bench = np.array([e.source.split("/", 1)[0] for e in examples])
    split = np.array([e.split for e in examples])
    results = []
    for name in held_out:
        train = (bench != name) & (split == "train")
        valid = (bench != name) & (split == "validation")
        report = bench == name
        train_y, _, _ = arrays(_pick(examples, train))
        valid_y, valid_weak, valid_strong = arrays(_pick(examples, valid))
        trained = select_head(
            features[train],
            train_y,
            features[valid],
            valid_y,
            valid_weak,
            valid_strong,
            options.c_grid,
        )
        valid_scores = numpy_head(features[valid], trained.head)
        threshold = choose_threshold(Scored(valid_scores, valid_weak, valid_strong), target)
        held = _pick(examples, report)
        scores = numpy_head(features[report], trained.head).astype(np.float64)
        trained_on = tuple(sorted(set(bench[train])))
        log(
            f"cross-benchmark: {name} held out; head trained on {', '.join(trained_on)} "
            f"({int(train.sum())} train, {int(valid.sum())} validation prompts), C={trained.c}"
        )
        results.append(
            CrossBenchmark(
                held_out=name,
                trained_on=trained_on,
                c=trained.c,
                threshold=threshold,
                outcomes=tuple(_outcome(e) for e in held),
                scores=scores,
                train_size=int(train.sum()),
                validation_size=int(valid.sum()),
            )
        )
    return results
