"""``tierroute eval live --task humaneval --limit 3`` end to end over a three-tier chain.

Real processes: three model services (``model_svc``'s own server and confidence computation over the
scripted engine, answering as ``scripted_code_tier.py`` says) and the real router; the command runs
in-process against the router's address, reads the chain from ``ListTiers``, scores every answer in
the real sandbox and writes JSON, Markdown and PNGs. The script fixes what each tier answers, so
pass@1, the cascade's path and the caught errors follow from it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.evaluation.scripted_code_tier import SCRIPT, write_rules
from tierroute.launch import ServiceProcess
from tierroute_tools.commands import eval as eval_command
from tierroute_tools.evaluation.live import read_records

ROOT = Path(__file__).resolve().parents[3]
TIERS = ("tiny", "small", "large")
PRICES = {"tiny": (0.01, 0.02), "small": (0.1, 0.3), "large": (0.5, 1.5)}
THRESHOLD = 0.65  # the router's default: SURE tokens score above it, UNSURE ones below

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three scripted code tiers and the real router, as processes; yields its address."""
    workdir = tmp_path_factory.mktemp("code-chain")
    started: list[ServiceProcess] = []
    try:
        tiers = {}
        for tier in TIERS:
            rules = write_rules(tier, workdir / f"{tier}-rules.json")
            tiers[tier] = ServiceProcess(
                "model_svc.scripted_server",
                [
                    *("--tier", tier, "--rules", str(rules), "--max-model-len", "4096"),
                    *(
                        "--max-streams",
                        "8",
                        "--first-token-delay",
                        "0.001",
                        "--token-delay",
                        "0.001",
                    ),
                ],
                cwd=ROOT,
                log_path=workdir / f"{tier}.log",
            )
            started.append(tiers[tier])
        config = {
            "server": {"host": "127.0.0.1", "grace_seconds": 1},
            "tiers": [
                {
                    "name": name,
                    "endpoints": [process.address],
                    "input_usd_per_mtok": PRICES[name][0],
                    "output_usd_per_mtok": PRICES[name][1],
                    "timeout_seconds": 30,
                }
                for name, process in tiers.items()
            ],
            "classifier": {"enabled": False},
        }
        path = workdir / "router.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for process in tiers.values():
            process.wait_until_serving(60)
        router = ServiceProcess(
            "router_svc", ["--config", str(path)], cwd=ROOT, log_path=workdir / "router.log"
        )
        started.append(router)
        router.wait_until_serving(60)
        yield router.address
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture(scope="module")
def run(router: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command's output directory (exit code checked)."""
    out = tmp_path_factory.mktemp("live-code")
    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))
    argv = ["eval", "live", "--task", "humaneval", "--limit", "3", "--router", router]
    args = parser.parse_args([*argv, "--concurrency", "3", "--out-dir", str(out)])
    assert args.func(args) == 0
    return out


def _by_arm(out: Path) -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, Any]] = {}
    for record in read_records(out / "records.jsonl"):
        arms.setdefault(record.arm, {})[record.item_id] = record
    return arms


def test_every_arm_answers_every_task_and_is_scored_in_the_sandbox(run: Path) -> None:
    arms = _by_arm(run)
    assert set(arms) == {*TIERS, "tierroute", "cascade"}
    ids = [f"HumanEval/{k}" for k in range(3)]
    for tier in TIERS:
        assert list(arms[tier]) == ids
        expected = [right for right, _ in SCRIPT[tier]]
        assert [arms[tier][i].correct for i in ids] == expected
        assert [arms[tier][i].status for i in ids] == [
            "passed" if right else "failed" for right in expected
        ]
        assert {r.served_tier for r in arms[tier].values()} == {tier}
        assert all(r.error is None and r.score_seconds > 0 for r in arms[tier].values())


def test_the_cascade_climbs_the_chain_as_scripted(run: Path) -> None:
    cascade = _by_arm(run)["cascade"]
    served = [cascade[f"HumanEval/{k}"].served_tier for k in range(3)]
    assert served == ["tiny", "large", "small"]
    hops = [[e["to_tier"] for e in cascade[f"HumanEval/{k}"].escalations] for k in range(3)]
    assert hops == [[], ["small", "large"], ["small"]]
    assert [cascade[f"HumanEval/{k}"].correct for k in range(3)] == [False, True, True]
    climbed = cascade["HumanEval/1"]
    assert [u["discarded"] for u in climbed.tier_usage] == [True, True, False]
    assert climbed.cost_usd == pytest.approx(sum(u["cost_usd"] for u in climbed.tier_usage))


def test_report_numbers_follow_from_the_script(run: Path) -> None:
    report = json.loads((run / "live.json").read_text())
    assert report["tiers"] == list(TIERS) and report["meta"]["tiers"] == list(TIERS)
    assert report["meta"]["max_tokens"] == 384
    assert report["tier_accuracy"] == pytest.approx({"tiny": 0.0, "small": 2 / 3, "large": 1.0})
    arms = report["arms"]
    assert arms["cascade"]["accuracy"] == pytest.approx(2 / 3)
    assert arms["cascade"]["escalation_rate"] == pytest.approx(2 / 3)
    assert arms["cascade"]["cascade"]["small_errors_caught"] == pytest.approx(2 / 3)
    assert arms["large"]["cost_vs_always_large"] == pytest.approx(1.0)
    assert arms["tiny"]["statuses"] == {"failed": 3}
    simulated = report["simulated_at_threshold"]
    assert simulated["threshold"] == THRESHOLD
    assert simulated["served_share"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert simulated["accuracy"] == pytest.approx(arms["cascade"]["accuracy"])
    assert simulated["relative_cost"] == pytest.approx(arms["cascade"]["cost_vs_always_large"])
    assert report["simulation_check"]["agreement"] == 1.0
    # Random escalation at the same rates: a third of the items from each tier.
    assert report["random_at_same_rate"]["accuracy"] == pytest.approx((0 + 2 / 3 + 1) / 3)
    # Small's confidence ranks its right answers (sure) above its wrong one (unsure).
    assert report["signal_auroc_by_tier"]["small"]["confidence"] == 1.0
    assert report["signal_auroc_by_tier"]["tiny"]["confidence"] is None  # never right
    assert "held_out" in report


def test_markdown_and_plots_are_written(run: Path) -> None:
    markdown = (run / "live.md").read_text()
    assert "| cascade | 3 | 66.7% |" in markdown
    assert "| small | 66.7% |" in markdown
    assert "3 of 3 items from the same tier" in markdown
    for png in ("cascade.png", "confidence_roc.png"):
        assert (run / png).read_bytes().startswith(b"\x89PNG")
