"""Static encoder vs MiniLM, side by side: the test split and the cross-benchmark holds.

For each encoder the same recipe: the routing data, split as the build splits it; a logistic
head fitted on the train split with ``C`` chosen by validation APGR. Reported per encoder:

- ``test``: the test split (in distribution), APGR, AUROC and cost reduction at 95% of the
  strong model's quality (the build's own card figures, recomputed here from the same inputs);
- ``holds``: one row per benchmark held out — the head trained on the *other* benchmarks'
  train split (``C`` on their validation split), scored on every prompt of the held-out one —
  next to random routing's APGR on the same prompts (mean over ``RANDOM_DRAWS`` seeded draws).

``tierroute classifier compare`` prints the table; both artefacts must be built
(``tierroute classifier build --encoder all``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from router_svc.encoders.static import StaticEmbedding
from tierroute import routing_metrics
from tierroute.outcomes import BENCHMARKS
from tierroute_tools.classifier_training.artifacts import ArtifactPaths, Log, TrainOptions, quiet
from tierroute_tools.classifier_training.dataset import Example, arrays
from tierroute_tools.classifier_training.features import cached_embed
from tierroute_tools.classifier_training.graph import numpy_head
from tierroute_tools.classifier_training.pipeline import load_dataset
from tierroute_tools.classifier_training.static_build import static_features
from tierroute_tools.classifier_training.train import select_head

RANDOM_DRAWS = 200
Features = npt.NDArray[np.float32]


def encoder_features(
    paths: ArtifactPaths, examples: Sequence[Example], options: TrainOptions, log: Log
) -> dict[str, Features]:
    """Each encoder's embeddings of ``examples`` (MiniLM's from the build's cache)."""
    prompts = [e.prompt for e in examples]
    embedding = StaticEmbedding.load(paths.static.root, options.truncation)
    static = static_features(embedding, prompts, log)
    log("compare: MiniLM features (the build's cache, else computed: minutes)")
    minilm = cached_embed(
        prompts,
        paths.encoder_int8,
        paths.tokenizer,
        options.truncation,
        paths.features,
        workers=options.workers,
    )
    return {"static": static, "minilm": minilm}


def random_apgr(weak: npt.NDArray[Any], strong: npt.NDArray[Any]) -> tuple[float, float, float]:
    """APGR of random routing (seeded uniform scores) on these prompts: mean, 5th and 95th
    percentile over the draws (how far chance alone moves it on a set this size)."""
    rng = np.random.default_rng(0)
    values = [
        routing_metrics.apgr(routing_metrics.routing_curve(rng.random(weak.size), weak, strong))
        for _ in range(RANDOM_DRAWS)
    ]
    low, high = np.percentile(values, [5, 95])
    return float(np.mean(values)), float(low), float(high)


def _fit(features: Features, examples: Sequence[Example], train: Any, valid: Any) -> Any:
    train_y, _, _ = arrays([e for e, keep in zip(examples, train, strict=True) if keep])
    valid_examples = [e for e, keep in zip(examples, valid, strict=True) if keep]
    valid_y, valid_weak, valid_strong = arrays(valid_examples)
    return select_head(features[train], train_y, features[valid], valid_y, valid_weak, valid_strong)


def _row(scores: Any, examples: Sequence[Example], keep: Any) -> dict[str, float]:
    labels, weak, strong = arrays([e for e, k in zip(examples, keep, strict=True) if k])
    summary = routing_metrics.summary(scores, weak, strong, labels)
    row: dict[str, float] = {
        "n": int(summary["n"]),
        "apgr": summary["apgr"],
        "auroc": summary.get("auroc", float("nan")),
        "cost_reduction_at_95": summary["cost_reduction_at_95"],
    }
    row["random_apgr"], row["random_apgr_p5"], row["random_apgr_p95"] = random_apgr(weak, strong)
    return row


def compare(
    paths: ArtifactPaths, options: TrainOptions | None = None, log: Log = quiet
) -> dict[str, Any]:
    """``{encoder: {"test": row, "holds": {benchmark: row}}}`` (see the module docstring)."""
    options = options or TrainOptions()
    data = load_dataset(options)
    examples = list(data.examples)
    split = np.array([e.split for e in examples])
    bench = np.array([e.source.split("/", 1)[0] for e in examples])
    result: dict[str, Any] = {}
    for encoder, features in encoder_features(paths, examples, options, log).items():
        trained = _fit(features, examples, split == "train", split == "validation")
        test = split == "test"
        rows: dict[str, Any] = {
            "test": _row(numpy_head(features[test], trained.head), examples, test),
            "holds": {},
        }
        for held in BENCHMARKS:
            kept = _fit(
                features,
                examples,
                (bench != held) & (split == "train"),
                (bench != held) & (split == "validation"),
            )
            mask = bench == held
            scores = numpy_head(features[mask], kept.head)
            rows["holds"][held] = _row(scores, examples, mask)
        result[encoder] = rows
        log(f"compare: {encoder} done")
    return result


def table(result: dict[str, Any]) -> str:
    """The comparison as Markdown."""
    lines = [
        "| encoder | set | n | APGR | random APGR (5-95%) | AUROC | cost cut at 95% |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for encoder, rows in result.items():
        named = [("test split", rows["test"])]
        named += [(f"hold: {b}", row) for b, row in rows["holds"].items()]
        for name, row in named:
            lines.append(
                f"| {encoder} | {name} | {row['n']} | {row['apgr']:.3f} | "
                f"{row['random_apgr']:.3f} ({row['random_apgr_p5']:.3f}-"
                f"{row['random_apgr_p95']:.3f}) | {row['auroc']:.3f} | "
                f"{row['cost_reduction_at_95']:.1%} |"
            )
    return "\n".join(lines)
