"""``tierroute eval live DATA --policy static --policy controller`` end to end over scripted tiers.

Real processes: two model services (``model_svc``'s server and confidence over the scripted
engine) and, per policy, a real router the command starts itself with fresh state. The small
tier is scripted right and sure on some prompts, wrong and unsure on others, and wrong but sure
on a few (what no confidence threshold catches); the large tier is right on every prompt. The
command writes the per-policy ``--json`` summary and the report; the numbers must follow from
the script and agree with each other.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierroute.launch import ServiceProcess
from tierroute_tools.commands import eval as eval_command
from tierroute_tools.evaluation.live import read_records

ROOT = Path(__file__).resolve().parents[3]
SURE, UNSURE = -0.02, -2.5
ITEMS = 16
WINDOW = 4

pytestmark = pytest.mark.timeout(150)


def _kind(k: int) -> str:
    """The small tier's behaviour on item ``k``: right, unsure (wrong) or sure_wrong."""
    return "sure_wrong" if k % 8 == 7 else "unsure" if k % 4 == 1 else "right"


def _items() -> list[dict[str, str]]:
    return [
        {
            "id": f"add-{k:02d}",
            "prompt": f"What is {10 + k} plus {20 + k}? (item {k:02d})",
            "answer": str(30 + 2 * k),
            "kind": "number",
            "source": "test/add",
        }
        for k in range(ITEMS)
    ]


def _rules(tier: str) -> list[dict[str, Any]]:
    rules = []
    for k, item in enumerate(_items()):
        right = item["answer"]
        if tier == "large" or _kind(k) == "right":
            answer, logprob = f"{10 + k} plus {20 + k} is {right}.", SURE
        else:
            wrong = str(int(right) + 1)
            answer = f"The sum is {wrong}."
            logprob = SURE if _kind(k) == "sure_wrong" else UNSURE
        rules.append({"contains": f"(item {k:02d})", "answer": answer, "logprob": logprob})
    rules.append({"contains": "", "answer": "I do not know.", "logprob": UNSURE})
    return rules


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two scripted tiers as processes; yields name -> address, cheapest first."""
    workdir = tmp_path_factory.mktemp("stream-tiers")
    started: dict[str, ServiceProcess] = {}
    try:
        for tier in ("small", "large"):
            rules = workdir / f"{tier}-rules.json"
            rules.write_text(json.dumps(_rules(tier)), encoding="utf-8")
            started[tier] = ServiceProcess(
                "model_svc.scripted_server",
                [
                    *("--tier", tier, "--rules", str(rules), "--max-model-len", "4096"),
                    *("--max-streams", "8", "--token-delay", "0.001"),
                ],
                cwd=ROOT,
                log_path=workdir / f"{tier}.log",
            )
        for process in started.values():
            process.wait_until_serving(60)
        yield {name: process.address for name, process in started.items()}
    finally:
        for process in started.values():
            process.stop()


@pytest.fixture(scope="module")
def run(tiers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command's output directory, with ``summary.json`` (exit code checked)."""
    out = tmp_path_factory.mktemp("stream")
    data = out / "items.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _items()), encoding="utf-8")
    config = out / "router-config.yaml"
    # Every request starts on the small tier (no classifier); the loop learns fast enough
    # for a 16-item stream: every small answer shadowed, a refit every few samples. It starts
    # from the static threshold (warmup: start) so that small answers are served and shadowed.
    quality = {
        "min_samples": 4,
        "refit_every": 4,
        "initial_rate": 1.0,
        "score_min_samples": 2,
        "warmup": "start",
    }
    config.write_text(
        yaml.safe_dump({"classifier": {"enabled": False}, "quality": quality}), encoding="utf-8"
    )
    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))
    argv = [
        *("eval", "live", str(data), "--policy", "static", "--policy", "controller"),
        *(f"--tier-address=small={tiers['small']}", f"--tier-address=large={tiers['large']}"),
        *("--tier-price", "small=0.05,0.10", "--tier-price", "large=0.50,1.50"),
        *("--window", str(WINDOW), "--concurrency", "2", "--settle-seconds", "10"),
        *("--router-config", str(config), "--json", str(out / "summary.json")),
        *("--out-dir", str(out / "report")),
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return out


def test_summary_json_has_exactly_the_promised_shape(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) == {"static", "controller"}
    for figures in summary.values():
        assert set(figures) == {
            "quality_ratio",
            "cost_ratio",
            "escalation_rate",
            "judge_agreement",
            "samples",
        }
    assert summary["static"]["samples"] == 0
    assert summary["controller"]["samples"] > 0


def test_static_follows_the_script(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())["static"]
    unsure = sum(_kind(k) == "unsure" for k in range(ITEMS))
    sure_wrong = sum(_kind(k) == "sure_wrong" for k in range(ITEMS))
    # Unsure answers escalate and the large tier gets them right; sure wrong ones stay.
    assert summary["escalation_rate"] == pytest.approx(unsure / ITEMS)
    assert summary["quality_ratio"] == pytest.approx((ITEMS - sure_wrong) / ITEMS)
    assert 0 < summary["cost_ratio"] < 1
    # Agreement judge vs gold: the large tier is always right, so it agrees on every pair.
    assert summary["judge_agreement"] == pytest.approx(1.0)


def test_report_numbers_agree_with_the_records(run: Path) -> None:
    report = json.loads((run / "report" / "stream.json").read_text())
    records = read_records(run / "report" / "records.jsonl")
    arms: dict[str, list[Any]] = {}
    for record in records:
        arms.setdefault(record.arm, []).append(record)
    assert set(arms) == {"small", "large", "static", "controller"}
    assert all(len(rows) == ITEMS for rows in arms.values())
    assert report["pinned"]["large"]["quality_ratio"] == pytest.approx(1.0)
    assert report["pinned"]["large"]["cost_ratio"] == pytest.approx(1.0)
    large_cost = sum(r.cost_usd for r in arms["large"])
    for name in ("static", "controller"):
        policy = report["policies"][name]
        assert len(policy["windows"]) == ITEMS // WINDOW
        overall = policy["overall"]
        served = sum(r.cost_usd for r in arms[name])
        assert overall["served_cost_usd"] == pytest.approx(served)
        assert overall["cost_ratio"] == pytest.approx(
            (served + overall["measurement_cost_usd"]) / large_cost
        )
        assert overall["served_quality"] == pytest.approx(
            sum(r.correct for r in arms[name]) / ITEMS
        )
        windows = policy["windows"]
        assert sum(w["measurement_cost_usd"] for w in windows) == pytest.approx(
            overall["measurement_cost_usd"]
        )
        random = policy["random_at_same_rate"]
        assert 0 < random["quality_ratio"] <= 1
    assert report["policies"]["static"]["overall"]["measurement_cost_usd"] == 0
    # The controller shadowed small answers on the large tier, and paid for it.
    assert report["policies"]["controller"]["overall"]["measurement_cost_usd"] > 0
    static_thresholds = [w["thresholds"] for w in report["policies"]["static"]["windows"]]
    assert static_thresholds == [{"small": 0.65}] * (ITEMS // WINDOW)


def test_markdown_and_plots_are_written(run: Path) -> None:
    markdown = (run / "report" / "stream.md").read_text()
    assert "| static |" in markdown and "| controller |" in markdown
    for png in (
        "stream_quality.png",
        "stream_cost.png",
        "stream_thresholds.png",
        "stream_wasted.png",
    ):
        assert (run / "report" / png).read_bytes().startswith(b"\x89PNG")
