"""``tierroute classifier``: the encoder switch of build and calibrate, and compare (parsing and
dispatch with the pipeline steps replaced; the real build is tested in tests/integration)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from tierroute_tools.classifier_training import pipeline, static_build
from tierroute_tools.commands import classifier as command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tierroute")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


CARD: dict[str, Any] = {
    "validation": {"n": 1, "apgr": 0.6, "cpt50": 0.3, "cpt80": 0.6},
    "test": {"n": 1, "apgr": 0.6, "cpt50": 0.3, "cpt80": 0.6},
    "calibration": {"threshold": 0.5, "target": {}},
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    made: list[tuple[str, Path]] = []

    def fake_static(paths: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        made.append(("static", paths.root))
        return CARD

    def fake_minilm(paths: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        made.append(("minilm", paths.root))
        return CARD

    monkeypatch.setattr(static_build, "build_static", fake_static)
    monkeypatch.setattr(pipeline, "build", fake_minilm)
    return made


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["static"]),
        (["--encoder", "static"], ["static"]),
        (["--encoder", "minilm"], ["minilm"]),
        (["--encoder", "all"], ["static", "minilm"]),
    ],
)
def test_build_runs_the_chosen_encoders(
    calls: list[tuple[str, Path]], tmp_path: Path, argv: list[str], expected: list[str]
) -> None:
    args = parse(["classifier", "build", "--out", str(tmp_path), *argv])
    assert args.func(args) == 0
    assert [name for name, _ in calls] == expected
    roots = dict(calls)
    if "static" in roots:
        assert roots["static"] == tmp_path / "static"
    if "minilm" in roots:
        assert roots["minilm"] == tmp_path


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["classifier", "build", "--encoder", "bert"])
    with pytest.raises(SystemExit):
        parse(["classifier", "calibrate", "--target-quality", "0.9", "--encoder", "all"])


def test_compare_takes_a_json_path(tmp_path: Path) -> None:
    args = parse(["classifier", "compare", "--json", str(tmp_path / "c.json")])
    assert args.json == tmp_path / "c.json"
    assert args.func is command.run_compare
