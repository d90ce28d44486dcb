"""Replay from the command line on real outcomes with the real ONNX classifier.

Needs the classifier artefact (``tierroute classifier build``; ``make test`` runs it first).
A slice of the held-out test split keeps the scoring short.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tierroute.classifier_artifact import CARD_FILE, MODEL_FILE, default_artifact_dir
from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, read_outcomes, write_outcomes
from tierroute_tools.commands import eval as eval_command

pytestmark = pytest.mark.slow


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def artefact() -> Path:
    folder = default_artifact_dir()
    for name in (MODEL_FILE, CARD_FILE):
        if not (folder / name).is_file():
            pytest.fail(f"{folder / name} missing: run `tierroute classifier build`")
    return folder


def test_convert_and_replay_the_test_split(artefact: Path, tmp_path: Path) -> None:
    test_split = tmp_path / "test.jsonl"
    assert _run(["eval", "convert", "--split", "test", "--out", str(test_split)]) == 0
    rows = read_outcomes(test_split)
    card = json.loads((artefact / CARD_FILE).read_text())
    assert len(rows) == card["split"]["sizes"]["test"]
    sliced = tmp_path / "slice.jsonl"
    write_outcomes(sliced, rows[:: max(1, len(rows) // 300)])
    out = tmp_path / "replay"
    code = _run(
        [
            "eval",
            "replay",
            str(sliced),
            "--strong",
            STRONG_MODEL,
            "--weak",
            WEAK_MODEL,
            "--out-dir",
            str(out),
            "--json",
            str(out / "policies.json"),
            "--title",
            "slice",
        ]
    )
    assert code == 0
    report = json.loads((out / "replay.json").read_text())
    policies = report["policies"]
    classifier = policies["classifier"]
    assert classifier["threshold"] == pytest.approx(card["calibration"]["threshold"])
    assert 0.0 < classifier["apgr"] < 1.0 and 0.0 < classifier["auroc"] < 1.0
    for name, metrics in policies.items():
        if metrics["apgr"] is not None and name != "oracle":
            assert policies["oracle"]["apgr"] >= metrics["apgr"]
    assert report["by_benchmark"]  # the test split mixes benchmarks
    assert set(json.loads((out / "policies.json").read_text())) == set(policies)
    for png in ("quality_cost.png", "pgr_share.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "| classifier |" in (out / "replay.md").read_text()


def test_replay_only_the_classifier(artefact: Path, tmp_path: Path) -> None:
    del artefact
    data = tmp_path / "gsm8k.jsonl"
    assert _run(["eval", "convert", "--benchmark", "gsm8k", "--out", str(data)]) == 0
    write_outcomes(data, read_outcomes(data)[:120])
    out = tmp_path / "only"
    assert (
        _run(
            [
                "eval",
                "replay",
                str(data),
                "--strong",
                STRONG_MODEL,
                "--weak",
                WEAK_MODEL,
                "--policy",
                "classifier",
                "--out-dir",
                str(out),
                "--threshold",
                "0.5",
            ]
        )
        == 0
    )
    report = json.loads((out / "replay.json").read_text())
    assert list(report["policies"]) == ["classifier"]
    assert report["policies"]["classifier"]["threshold"] == 0.5
