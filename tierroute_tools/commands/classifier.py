"""``tierroute classifier``: export, train, calibrate and build the router's classifier.

``tierroute classifier build`` does everything the default encoder's artefact needs (the static
encoder, ``$TIERROUTE_CACHE_DIR/classifier/static/``: distil MiniLM into a token-embedding
table, train and calibrate the head), skipping steps whose inputs have not changed;
``--encoder minilm`` builds the MiniLM ONNX artefact instead, ``--encoder all`` both.
``export`` and ``train`` run the MiniLM steps one at a time. Progress goes to stderr, the
summary to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tierroute_tools.classifier_training.defaults import (
    DEFAULT_HEAD_TOKENS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TARGET_QUALITY,
)

ENCODERS = ("static", "minilm")


def register(subparsers: Any) -> None:
    """Add the ``classifier`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "classifier", help="build the router's ONNX classifier", description=__doc__
    )
    commands = parser.add_subparsers(dest="classifier_command", required=True)

    export = commands.add_parser("export", help="export and quantise the encoder to ONNX")
    _add_out(export)
    export.add_argument("--force", action="store_true", help="export even when up to date")
    export.set_defaults(func=run_export)

    train = commands.add_parser("train", help="train the head on the routing data")
    _add_out(train)
    _add_training(train)
    _add_target(train, required=False)
    train.set_defaults(func=run_train)

    calibrate = commands.add_parser("calibrate", help="choose the threshold on validation")
    _add_out(calibrate)
    _add_encoder(calibrate, choices=ENCODERS)
    _add_target(calibrate, required=True)
    calibrate.set_defaults(func=run_calibrate)

    build = commands.add_parser(
        "build", help="distil or export + train + calibrate, as needed (idempotent)"
    )
    _add_out(build)
    _add_encoder(build, choices=(*ENCODERS, "all"))
    _add_training(build)
    _add_target(build, required=False)
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(func=run_build)

    compare = commands.add_parser(
        "compare", help="static vs MiniLM: test split and cross-benchmark holds"
    )
    _add_out(compare)
    compare.add_argument("--json", type=Path, default=None, help="also write the figures here")
    compare.set_defaults(func=run_compare)


def _add_encoder(parser: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    parser.add_argument(
        "--encoder",
        choices=choices,
        default=ENCODERS[0],
        help="static: distilled token-embedding table (default, what the router loads); "
        "minilm: the transformer in ONNX",
    )


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="artefact directory (default: $TIERROUTE_CACHE_DIR/classifier)",
    )


def _add_training(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="routing data (default: data/routellm)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"truncation budget in tokens (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--head-tokens",
        type=int,
        default=DEFAULT_HEAD_TOKENS,
        help=f"tokens kept from the start (default {DEFAULT_HEAD_TOKENS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument(
        "--margin", type=float, default=0.1, help="label: weak >= strong - margin (scores 0..1)"
    )
    parser.add_argument("--workers", type=int, default=2, help="threads embedding prompts")


def _add_target(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--target-cost-reduction",
        type=float,
        help="threshold keeping at least this cost reduction on validation (e.g. 0.6)",
    )
    group.add_argument(
        "--target-quality",
        type=float,
        help="threshold reaching this fraction of strong quality "
        f"(default {DEFAULT_TARGET_QUALITY})",
    )
    parser.add_argument(
        "--weak-cost-ratio",
        type=float,
        default=0.0,
        help="price of a weak call relative to a strong one (0 = count strong calls only)",
    )


def _paths(args: argparse.Namespace) -> Any:
    from tierroute_tools.classifier_training.pipeline import ArtifactPaths

    return ArtifactPaths(args.out) if args.out is not None else ArtifactPaths.default()


def _target(args: argparse.Namespace) -> Any:
    from tierroute_tools.classifier_training.calibrate import Target

    if args.target_cost_reduction is not None:
        return Target("cost_reduction", args.target_cost_reduction, args.weak_cost_ratio)
    quality = args.target_quality if args.target_quality is not None else DEFAULT_TARGET_QUALITY
    return Target("quality", quality, args.weak_cost_ratio)


def _options(args: argparse.Namespace) -> Any:
    from tierroute_tools.classifier_training.pipeline import TrainOptions

    return TrainOptions(
        data_dir=args.data_dir,
        max_tokens=args.max_tokens,
        head_tokens=args.head_tokens,
        seed=args.seed,
        margin=args.margin,
        workers=args.workers,
    )


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _summary(card: dict[str, Any]) -> None:
    validation, test, chosen = card["validation"], card["test"], card["calibration"]
    print(f"artefact card: threshold {chosen['threshold']:.4f} ({chosen['target']})")
    for name, metrics in (("validation", validation), ("test", test)):
        point = chosen.get(name, {})
        print(
            f"  {name}: n={int(metrics['n'])} AUROC {metrics.get('auroc', float('nan')):.3f} "
            f"APGR {metrics['apgr']:.3f} CPT(50%) {metrics['cpt50']:.3f} "
            f"CPT(80%) {metrics['cpt80']:.3f}; at threshold: strong share "
            f"{point.get('strong_share', float('nan')):.3f}, quality "
            f"{point.get('quality', float('nan')):.4f} vs random "
            f"{point.get('random_quality', float('nan')):.4f}"
        )


def _fail(exc: Exception) -> int:
    print(f"tierroute classifier: {exc}", file=sys.stderr)
    return 1


def run_export(args: argparse.Namespace) -> int:
    """Export the encoder (fp32 + int8) and the tokenizer."""
    from tierroute_tools.classifier_training.pipeline import run_export as export

    try:
        export(_paths(args), force=args.force, log=_log)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train the head; writes the router graphs and the card."""
    from tierroute_tools.classifier_training.pipeline import run_train as train

    try:
        card = train(_paths(args), _options(args), _target(args), log=_log)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    _summary(card)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Re-choose the threshold on validation for a target."""
    from tierroute_tools.classifier_training.pipeline import run_calibrate as calibrate
    from tierroute_tools.classifier_training.static_build import run_static_calibrate

    try:
        if args.encoder == "static":
            card = run_static_calibrate(_paths(args).static, _target(args), log=_log)
        else:
            card = calibrate(_paths(args), _target(args), log=_log)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    _summary(card)
    return 0


def run_build(args: argparse.Namespace) -> int:
    """Everything the default artefact needs, idempotently."""
    from tierroute_tools.classifier_training.pipeline import build
    from tierroute_tools.classifier_training.static_build import build_static

    paths, options, target = _paths(args), _options(args), _target(args)
    try:
        if args.encoder in ("static", "all"):
            card = build_static(paths.static, options, target, force=args.force, log=_log)
            print("static encoder (the router's default):")
            _summary(card)
        if args.encoder in ("minilm", "all"):
            card = build(paths, options, target, force=args.force, log=_log)
            print("MiniLM encoder (classifier.encoder: minilm):")
            _summary(card)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Both encoders side by side (needs ``build --encoder all``)."""
    import json

    from tierroute_tools.classifier_training.compare import compare, table

    try:
        result = compare(_paths(args), log=_log)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    print(table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
