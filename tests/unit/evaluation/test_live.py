"""Arms through a scripted router: records, scoring, errors, and the live summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.unit.evaluation.fakes import Answer, ScriptedRouter
from tierroute_tools.evaluation.chain import Chain, cascade_point
from tierroute_tools.evaluation.live import (
    LiveItem,
    Sampling,
    default_arms,
    read_records,
    run_arm,
    write_records,
)
from tierroute_tools.evaluation.live_report import summarise
from tierroute_tools.evaluation.live_run import (
    live_markdown,
    model_service_env,
    platform_router_config,
    select_half,
    write_live_outputs,
)

SURE = [-0.01, -0.02]  # confident tokens
UNSURE = [-2.5, -3.0]  # confidence ~0.0: escalates at any sensible threshold

# Four items: the small tier is right and sure (0), wrong and unsure (1), wrong but sure (2),
# right but unsure (3). The large tier is right on all but item 2.
ITEMS = [LiveItem(str(i), f"q{i}", str(10 + i), "number", "t") for i in range(4)]
SMALL = {
    "q0": Answer("10", SURE),
    "q1": Answer("99", UNSURE),
    "q2": Answer("98", SURE),
    "q3": Answer("13", UNSURE),
}
LARGE = {
    "q0": Answer("10", SURE),
    "q1": Answer("11", SURE),
    "q2": Answer("97", SURE),
    "q3": Answer("13", SURE),
}


def _router(**kwargs: object) -> ScriptedRouter:
    return ScriptedRouter({"small": SMALL, "large": LARGE}, **kwargs)  # type: ignore[arg-type]


async def _run_all(router: ScriptedRouter, arms: tuple[str, ...]) -> list:  # type: ignore[type-arg]
    records = []
    for name in arms:
        records += await run_arm(router, ITEMS, default_arms()[name], concurrency=2)  # type: ignore[arg-type]
    return records


async def test_arms_send_the_right_options_and_score() -> None:
    router = _router()
    records = await _run_all(router, ("small", "large", "tierroute", "cascade"))
    assert [c["tier"] for c in router.calls[:4]] == ["small"] * 4
    assert all(c["fallback_mode"] == "disabled" for c in router.calls[:8])
    assert all(c["tier"] is None for c in router.calls[8:12])
    assert all(c["stop"] == ("\n",) and c["max_tokens"] == 16 for c in router.calls)
    small = [r for r in records if r.arm == "small"]
    assert [r.correct for r in small] == [True, False, False, True]
    assert [r.answer for r in small] == ["10", "99", "98", "13"]
    cascade = [r for r in records if r.arm == "cascade"]
    assert [r.escalated for r in cascade] == [False, True, False, True]
    assert [r.served_tier for r in cascade] == ["small", "large", "small", "large"]
    escalated = cascade[1]
    assert escalated.escalation_confidence is not None and escalated.escalation_confidence < 0.1
    assert [u["discarded"] for u in escalated.tier_usage] == [True, False]
    assert escalated.cost_usd == pytest.approx(sum(u["cost_usd"] for u in escalated.tier_usage))
    assert escalated.stats["token_count"] == 2.0


async def test_failures_are_recorded_as_wrong() -> None:
    records = await run_arm(
        _router(failing=frozenset({"q1"})),  # type: ignore[arg-type]
        ITEMS,
        default_arms()["small"],
        sampling=Sampling(max_tokens=4, stop=()),
    )
    failed = records[1]
    assert failed.error is not None and "UNAVAILABLE" in failed.error and not failed.correct
    assert [r.item_id for r in records] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError):
        await run_arm(_router(), ITEMS, default_arms()["small"], concurrency=0)  # type: ignore[arg-type]


async def test_summary_counts_caught_errors_and_auroc(tmp_path: Path) -> None:
    records = await _run_all(_router(), ("small", "large", "cascade"))
    report = summarise(records, fallback_threshold=0.65)
    arms = report["arms"]
    assert arms["small"]["accuracy"] == 0.5 and arms["large"]["accuracy"] == 0.75
    # 0 kept and right, 1 escalated and fixed, 2 kept and wrong, 3 escalated (large right too)
    assert arms["cascade"]["accuracy"] == 0.75
    assert arms["cascade"]["escalation_rate"] == 0.5
    caught = arms["cascade"]["cascade"]
    # Small errors: items 1 and 2; only item 1 escalated. Right answers: 0 and 3; 3 escalated.
    assert caught["small_errors"] == 2 and caught["small_errors_caught"] == 0.5
    assert caught["needless_escalations"] == 0.5
    assert 0 < arms["cascade"]["cost_vs_always_large"] < 1
    # Confidence ranks: sure items {0 right, 2 wrong} above unsure {1 wrong, 3 right}: 0.5.
    assert report["confidence_auroc"] == pytest.approx(0.5)
    assert report["simulated_at_threshold"]["escalation_rate"] == 0.5
    assert report["simulated_at_threshold"]["accuracy"] == arms["cascade"]["accuracy"]
    assert report["oracle_cascade"]["accuracy"] == 0.75
    sweep = report["simulated_sweep"]
    assert sweep[0]["escalation_rate"] == 0.0 and sweep[-1]["escalation_rate"] == 1.0
    assert sweep[-1]["accuracy"] == 0.75 and sweep[-1]["relative_cost"] > 1.0
    assert "| cascade |" in live_markdown(report)
    out = write_live_outputs(records, tmp_path, title="T", fallback_threshold=0.65, meta={})
    assert out["arms"] == report["arms"]
    assert read_records(tmp_path / "records.jsonl") == records
    assert (tmp_path / "cascade.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "confidence_roc.png").read_bytes().startswith(b"\x89PNG")


async def test_tier_errors_are_not_counted_as_caught() -> None:
    # Item 0 (small right) and item 2 (small wrong, sure) hit a failing small tier.
    router = _router(tier_errors=frozenset({"q0", "q2"}))
    records = await _run_all(router, ("small", "large", "cascade"))
    cascade = {r.item_id: r for r in records if r.arm == "cascade"}
    assert cascade["0"].escalation_cause == "tier_error"
    assert cascade["1"].escalation_cause == "low_confidence"
    report = summarise(records)
    arm = report["arms"]["cascade"]
    assert arm["escalation_rate"] == 1.0
    assert arm["escalations_by_cause"] == {"low_confidence": 2, "tier_error": 2}
    # Only items 1 (wrong) and 3 (right) reached the small tier's confidence.
    assert arm["cascade"]["first_sent_to_small"] == 2
    assert arm["cascade"]["small_errors_caught"] == 1.0
    assert arm["cascade"]["needless_escalations"] == 1.0


async def test_records_round_trip(tmp_path: Path) -> None:
    records = await _run_all(_router(), ("small", "large"))
    write_records(tmp_path / "r.jsonl", records)
    assert read_records(tmp_path / "r.jsonl") == records
    chain = Chain.from_records(records, ("small", "large"))
    point = cascade_point(chain, chain.confidence, 0.0)
    assert point["escalation_rate"] == 0.0 and math.isclose(point["accuracy"], 0.5)
    with pytest.raises(ValueError, match="large"):
        Chain.from_records([r for r in records if r.arm == "small"], ("small", "large"))


def test_platform_helpers() -> None:
    merged = platform_router_config(
        {"policy": {"fallback_threshold": 0.6}, "resilience": {"retries": 0}}
    )
    assert merged == {
        "policy": {"fallback_threshold": 0.6},
        "resilience": {"health_check_timeout_seconds": 5.0, "retries": 0},
    }
    assert platform_router_config({})["resilience"] == {"health_check_timeout_seconds": 5.0}
    env = model_service_env({"confidence": {"bias": 1.5, "window_tokens": 8}, "tier": "small"})
    assert env == {
        "TIERROUTE_CONFIDENCE__BIAS": "1.5",
        "TIERROUTE_CONFIDENCE__WINDOW_TOKENS": "8",
        "TIERROUTE_TIER": "small",
    }
    items = [LiveItem(str(i), "p", "1", "number") for i in range(200)]
    fit_half, report_half = select_half(items, "fit", 0), select_half(items, "report", 0)
    assert len(fit_half) + len(report_half) == 200
    assert not {i.id for i in fit_half} & {i.id for i in report_half}
    with pytest.raises(ValueError):
        select_half(items, "other", 0)
