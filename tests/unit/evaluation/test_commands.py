"""``tierroute eval`` sub-commands wired end to end on small local data (no models needed)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import yaml

from model_svc.config import ConfidenceSettings
from tests.unit.evaluation.test_fit_confidence import _records
from tierroute.outcomes import Outcome, write_outcomes
from tierroute_tools.commands import eval as eval_command
from tierroute_tools.evaluation.live import read_items, write_records
from tierroute_tools.evaluation.live_run import child_environment, read_yaml_mapping


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_make_task(tmp_path: Path) -> None:
    out = tmp_path / "task.jsonl"
    assert _run(["eval", "make-task", "--count", "25", "--seed", "2", "--out", str(out)]) == 0
    assert len(read_items(out)) == 25


def test_replay_without_a_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        Outcome(f"p{i}", {"big": float(i % 3 != 0), "small": float(i % 2 == 0)}, "bench")
        for i in range(60)
    ]
    data = tmp_path / "outcomes.jsonl"
    write_outcomes(data, rows)
    argv = ["eval", "replay", str(data), "--strong", "big", "--weak", "small"]
    policies = ["--policy", "oracle", "--policy", "random", "--policy", "always-strong"]
    prices = ["--prices", "big=10,30", "small=1"]
    out = tmp_path / "out"
    assert _run([*argv, *policies, *prices, "--out-dir", str(out)]) == 0
    report = json.loads((out / "replay.json").read_text())
    assert list(report["policies"]) == ["oracle", "random", "always-strong"]
    assert report["prices"]["small"] == {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0}
    assert "| oracle |" in capsys.readouterr().out
    # No price for an unknown model: a clear error, exit code 1.
    assert _run([*argv, *policies, "--out-dir", str(out)]) == 1
    assert "no price for big" in capsys.readouterr().err


def test_fit_confidence_writes_both_configs(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_records(records, _records(200))
    out = tmp_path / "fit"
    assert _run(["eval", "fit-confidence", str(records), "--out-dir", str(out)]) == 0
    model = yaml.safe_load((out / "model-confidence.yaml").read_text())
    ConfidenceSettings(**model["confidence"])  # loads as the model service would
    assert (
        0
        <= yaml.safe_load((out / "router-policy.yaml").read_text())["policy"]["fallback_threshold"]
        <= 1
    )
    assert json.loads((out / "fit.json").read_text())["report_items"] > 0


def test_live_refuses_configs_for_a_running_router(tmp_path: Path) -> None:
    task = tmp_path / "task.jsonl"
    _run(["eval", "make-task", "--count", "5", "--out", str(task)])
    config = tmp_path / "c.yaml"
    config.write_text("confidence: {bias: 1.0}\n")
    argv = ["eval", "live", str(task), "--router", "127.0.0.1:1", "--model-config", str(config)]
    assert _run(argv) == 1


def test_yaml_and_environment_helpers(tmp_path: Path) -> None:
    assert read_yaml_mapping(None) == {}
    path = tmp_path / "x.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        read_yaml_mapping(path)
    name = "TIERROUTE_EVAL_TEST__VALUE"
    assert name not in os.environ
    with child_environment({name: "1"}):
        assert os.environ[name] == "1"
    assert name not in os.environ
