"""N-tier live evaluation with scripted tiers: arms, chain simulation, random baseline, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.evaluation.fakes import Answer, ScriptedRouter
from tierroute_tools.evaluation import chain as chains
from tierroute_tools.evaluation.fit_confidence import fit
from tierroute_tools.evaluation.live import LiveItem, LiveRecord, chain_arms, run_arm
from tierroute_tools.evaluation.live_report import summarise
from tierroute_tools.evaluation.live_run import resolve_chain, write_live_outputs
from tierroute_tools.evaluation.tables import live_markdown

TIERS = ("tiny", "small", "large")
SURE = [-0.01, -0.02]
UNSURE = [-2.5, -3.0]


def test_chain_arms_pin_each_tier_and_cascade_from_the_cheapest() -> None:
    arms = chain_arms(TIERS, 0.4)
    assert list(arms) == ["tiny", "small", "large", "tierroute", "cascade"]
    assert all(arms[t].tier == t and arms[t].fallback_mode == "disabled" for t in TIERS)
    assert arms["cascade"].tier == "tiny" and arms["cascade"].fallback_mode == "buffered"
    assert arms["cascade"].fallback_threshold == 0.4 and arms["tierroute"].tier is None
    for bad in (("small",), ("a", "a"), ("cascade", "large")):
        with pytest.raises(ValueError):
            chain_arms(bad)


def test_resolve_chain_accepts_only_a_suffix() -> None:
    assert resolve_chain(TIERS, None) == TIERS
    assert resolve_chain(TIERS, ["small", "large"]) == ("small", "large")
    for bad in (["tiny", "large"], ["large"], ["tiny", "small"]):
        with pytest.raises(ValueError):
            resolve_chain(TIERS, bad)


def _chain(ok: list[list[bool]], conf: list[list[float]], cost: list[list[float]]) -> chains.Chain:
    n = len(ok[0])
    return chains.Chain(
        tiers=tuple(TIERS[-len(ok) :]),
        ids=tuple(str(i) for i in range(n)),
        ok=np.array(ok, dtype=bool),
        confidence=np.array(conf, dtype=np.float64),
        cost=np.array(cost, dtype=np.float64),
        stats={name: np.zeros((len(ok), n)) for name in chains.STAT_NAMES},
    )


# Four items over three tiers. Tiny: right on 0 only; small: right on 0, 1; large: right on 0-2.
HAND = _chain(
    ok=[[True, False, False, False], [True, True, False, False], [True, True, True, False]],
    conf=[[0.9, 0.2, 0.8, 0.1], [0.9, 0.7, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5]],
    cost=[[1.0] * 4, [3.0] * 4, [10.0] * 4],
)


def test_cascade_point_climbs_the_chain_and_pays_every_visited_tier() -> None:
    # Threshold 0.5: item 0 stays on tiny (0.9), 1 climbs to small (0.7), 2 stays on tiny
    # (0.8, wrong), 3 climbs to the last tier (0.1, then 0.2).
    assert chains.served_tier(HAND, HAND.confidence, 0.5).tolist() == [0, 1, 0, 2]
    point = chains.cascade_point(HAND, HAND.confidence, 0.5)
    assert point["accuracy"] == 0.5  # items 0 and 1 right
    assert point["served_share"] == [0.5, 0.25, 0.25]
    assert point["escalation_rate"] == 0.5
    # Costs: 1 + (1+3) + 1 + (1+3+10) = 20 over the large tier's 40.
    assert point["relative_cost"] == pytest.approx(0.5)
    # Tiny's errors are items 1-3; items 1 and 3 escalated.
    assert point["errors_caught"] == pytest.approx(2 / 3)
    assert point["needless_escalations"] == 0.0
    sweep = chains.cascade_sweep(HAND)
    never, always = sweep[0], sweep[-1]
    assert never["served_share"] == [1.0, 0.0, 0.0] and never["accuracy"] == 0.25
    assert always["served_share"] == [0.0, 0.0, 1.0] and always["accuracy"] == 0.75
    assert always["relative_cost"] == pytest.approx(56 / 40)


def test_random_escalation_is_the_exact_expectation() -> None:
    # Tier accuracies 0.25, 0.5, 0.75; cumulative costs per item 1, 4, 14 (totals 4, 16, 56).
    expected = chains.random_point(HAND, [0.5, 0.25, 0.25])
    assert expected["accuracy"] == pytest.approx(0.5 * 0.25 + 0.25 * 0.5 + 0.25 * 0.75)
    assert expected["relative_cost"] == pytest.approx((0.5 * 4 + 0.25 * 16 + 0.25 * 56) / 40)
    assert expected["escalation_rate"] == 0.5
    # It is the mean over every way of serving 2/1/1 items from the tiers (12 assignments).
    import itertools

    outcomes = []
    for order in set(itertools.permutations([0, 0, 1, 2])):
        served = np.array(order)
        outcomes.append(HAND.ok[served, np.arange(4)].mean())
    assert expected["accuracy"] == pytest.approx(float(np.mean(outcomes)))
    with pytest.raises(ValueError):
        chains.random_point(HAND, [0.5, 0.5])


def test_oracle_and_target_choice() -> None:
    oracle = chains.oracle_point(HAND)
    # Item 0 on tiny, 1 on small, 2 on large, 3 (nobody right) on large: 1 + 4 + 14 + 14.
    assert oracle["accuracy"] == 0.75 and oracle["relative_cost"] == pytest.approx(33 / 40)
    sweep = chains.cascade_sweep(HAND)
    point, reached = chains.cheapest_reaching(sweep, 0.95 * 0.75)
    assert reached and point["accuracy"] >= 0.7125
    assert point["relative_cost"] == min(
        p["relative_cost"] for p in sweep if p["accuracy"] >= 0.7125
    )
    _, reached = chains.cheapest_reaching(sweep, 0.99)
    assert not reached


def test_agreement_flags_a_mismatch() -> None:
    measured = {"0": "tiny", "1": "small", "2": "large", "3": "large"}
    check = chains.agreement(HAND, 0.5, measured, skip=frozenset({"3"}))
    assert check["compared"] == 3 and check["agreeing"] == 2
    assert check["mismatches"] == [{"item_id": "2", "simulated": "tiny", "measured": "large"}]


# A scripted three-tier run: eight items, tiny right and sure on 0-1, wrong and unsure on 2-7
# (wrong but sure on 7), small right and sure on 2-4, wrong and unsure on 5-7; large right on
# all but 7.
ITEMS = [LiveItem(str(i), f"q{i}", str(i), "number", "t") for i in range(8)]


def _answers() -> dict[str, dict[str, Answer]]:
    tiny, small, large = {}, {}, {}
    for i in range(8):
        q, right, wrong = f"q{i}", str(i), "99"
        tiny[q] = Answer(right, SURE) if i < 2 else Answer(wrong, SURE if i == 7 else UNSURE)
        small[q] = Answer(right, SURE) if 2 <= i <= 4 or i < 2 else Answer(wrong, UNSURE)
        large[q] = Answer(right if i != 7 else wrong, SURE)
    return {"tiny": tiny, "small": small, "large": large}


async def _three_tier_records() -> list[LiveRecord]:
    router = ScriptedRouter(_answers())
    records: list[LiveRecord] = []
    for arm in chain_arms(TIERS, 0.65).values():
        records += await run_arm(router, ITEMS, arm, concurrency=3)  # type: ignore[arg-type]
    return records


async def test_three_tier_summary_matches_the_measured_cascade(tmp_path: Path) -> None:
    records = await _three_tier_records()
    cascade = {r.item_id: r for r in records if r.arm == "cascade"}
    assert [cascade[str(i)].served_tier for i in range(8)] == ["tiny"] * 2 + ["small"] * 3 + [
        "large"
    ] * 2 + ["tiny"]
    assert [e["to_tier"] for e in cascade["6"].escalations] == ["small", "large"]
    report = summarise(records, fallback_threshold=0.65, tiers=TIERS)
    assert report["tier_accuracy"] == {"tiny": 0.25, "small": 0.625, "large": 0.875}
    simulated = report["simulated_at_threshold"]
    assert simulated["accuracy"] == report["arms"]["cascade"]["accuracy"] == 7 / 8
    assert simulated["served_share"] == [3 / 8, 3 / 8, 2 / 8]
    assert report["simulation_check"]["agreement"] == 1.0
    assert report["arms"]["cascade"]["cost_vs_always_large"] == pytest.approx(
        simulated["relative_cost"]
    )
    # Tiny's errors: items 2-7; all but 7 (sure) escalated on confidence.
    assert report["arms"]["cascade"]["cascade"]["small_errors_caught"] == pytest.approx(5 / 6)
    random = report["random_at_same_rate"]
    assert random["accuracy"] == pytest.approx(3 / 8 * 0.25 + 3 / 8 * 0.625 + 2 / 8 * 0.875)
    assert report["signal_auroc_by_tier"]["small"]["confidence"] == 1.0
    assert set(report["signal_auroc_by_tier"]) == {"tiny", "small"}
    out = write_live_outputs(
        records, tmp_path, title="T", fallback_threshold=0.65, meta={}, tiers=TIERS
    )
    assert json.loads((tmp_path / "live.json").read_text())["tiers"] == list(TIERS)
    assert out["simulated_sweep"] == report["simulated_sweep"]
    markdown = (tmp_path / "live.md").read_text()
    assert "| tiny | 25.0% |" in markdown and "random, same rates" in markdown
    assert "8 of 8 items from the same tier" in markdown
    for png in ("cascade.png", "confidence_roc.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


def _copies(records: list[LiveRecord], copies: int = 6) -> list[LiveRecord]:
    """Copies of the items under distinct ids, so both halves of the split hold every case."""
    return [
        LiveRecord(**{**r.to_json(), "item_id": f"{r.item_id}-{k}"})
        for r in records
        for k in range(copies)
    ]


async def test_three_tier_fit_reports_the_held_back_half(tmp_path: Path) -> None:
    records = await _three_tier_records()
    many = _copies(records)
    result = fit(many, tiers=TIERS, target=0.9)
    report = result.report
    assert report["tiers"] == list(TIERS)
    assert set(result.params_by_tier) == {"tiny", "small"}
    after = report["report"]["after"]
    assert set(after["auroc_by_tier"]) == {"tiny", "small"}
    point, random = after["at_threshold"], after["random_at_same_rate"]
    assert random["served_share"] == point["served_share"]
    assert point["accuracy"] >= random["accuracy"]
    written = {path.name for path in result.write(tmp_path)}
    assert {"model-confidence-tiny.yaml", "model-confidence-small.yaml"} <= written
    summary = summarise(records, fallback_threshold=0.65, tiers=TIERS)
    markdown = live_markdown({**summary, "held_out": report})
    assert "Held-out: calibration and threshold fitted on" in markdown


async def test_a_tier_always_wrong_keeps_its_parameters() -> None:
    answers = _answers()
    answers["tiny"] = {q: Answer("99", UNSURE) for q in answers["tiny"]}
    router = ScriptedRouter(answers)
    records: list[LiveRecord] = []
    for name in TIERS:
        records += await run_arm(router, ITEMS, chain_arms(TIERS)[name])  # type: ignore[arg-type]
    result = fit(_copies(records), tiers=TIERS)
    assert result.report["selection"]["tiny"]["constant"] == "never right"
    assert "not_fitted" not in result.report["selection"]["small"]
    # Never right on the fit half: a constant score near 0, so tiny always escalates.
    tiny = result.params_by_tier["tiny"]
    assert tiny.bias < -10 and tiny.weight_mean == tiny.weight_min_window == 0.0
    after = result.report["report"]["after"]["at_threshold"]
    assert after["served_share"][0] == 0.0 and after["errors_caught"] == 1.0
    report = summarise(records, fallback_threshold=0.65, tiers=TIERS)
    assert report["signal_auroc_by_tier"]["tiny"]["confidence"] is None


def test_live_command_refuses_bad_arguments_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from tierroute_tools.commands import eval as eval_command

    parser = argparse.ArgumentParser(prog="tierroute")
    eval_command.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(["eval", "live", *argv, "--out-dir", str(tmp_path)])
        return int(args.func(args))

    assert run() == 1  # neither a task file nor --task
    assert "either a task file" in capsys.readouterr().err
    # A chain that is not a suffix of the preset, an arm the chain has not: refused at once
    # (no engine starts: the test would take minutes otherwise).
    assert run("--task", "humaneval", "--tiers", "code3", "--chain", "tiny,large") == 1
    assert "must be the last tiers" in capsys.readouterr().err
    assert run("--task", "humaneval", "--tiers", "code3", "--arm", "xl", "--limit", "1") == 1
    assert "unknown arm(s) xl" in capsys.readouterr().err
    assert run("--task", "no-such-set", "--router", "127.0.0.1:1") == 1
