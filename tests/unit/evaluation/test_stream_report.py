"""The stream report's arithmetic on synthetic records: windows, ratios, costs, sweep, JSON."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tierroute_tools.evaluation.live import LiveRecord
from tierroute_tools.evaluation.prices import Price
from tierroute_tools.evaluation.stream_report import (
    measurement_costs,
    random_at_rate,
    repriced,
    stream_report,
    summary_json,
    target_prices,
    windows,
)
from tierroute_tools.evaluation.stream_tables import stream_markdown

PRICES = {"small": Price(0.1, 0.2), "large": Price(1.0, 2.0)}
IDS = [f"q{k}" for k in range(6)]


def _record(arm: str, item: str, tier: str, correct: bool, **kwargs: Any) -> LiveRecord:
    """A record whose tokens (10 in, 10 out per tier visited) are priced at ``PRICES``."""
    visited = kwargs.pop("visited", [tier])
    usage = [
        {
            "tier": t,
            "prompt_tokens": 10,
            "completion_tokens": 10,
            "cost_usd": PRICES[t].cost(10, 10),
            "discarded": t != tier,
        }
        for t in visited
    ]
    return LiveRecord(
        item_id=item,
        arm=arm,
        source="s",
        gold="1",
        text="1",
        answer="1",
        correct=correct,
        served_tier=tier,
        escalated=len(visited) > 1,
        tier_usage=usage,
        cost_usd=sum(u["cost_usd"] for u in usage),
        **kwargs,
    )


SMALL_RIGHT = [True, False, True, True, False, True]
LARGE_RIGHT = [True, True, True, True, True, False]
# The policy escalates items 1 and 4 (small wrong there) and keeps the others on small.
ESCALATED = [False, True, False, False, True, False]


def _records() -> list[LiveRecord]:
    rows = []
    for k, item in enumerate(IDS):
        rows.append(_record("small", item, "small", SMALL_RIGHT[k]))
        rows.append(_record("large", item, "large", LARGE_RIGHT[k]))
        if ESCALATED[k]:
            rows.append(
                _record("controller", item, "large", LARGE_RIGHT[k], visited=["small", "large"])
            )
        else:
            rows.append(_record("controller", item, "small", SMALL_RIGHT[k]))
        rows.append(_record("static", item, "small", SMALL_RIGHT[k]))
    return rows


def _snap(samples: int, shadow: float, threshold: float) -> dict[str, Any]:
    return {
        "samples": samples,
        "shadow_cost_usd": shadow,
        "judge_cost_usd": 0.0,
        "thresholds": {"small": threshold},
    }


SNAPSHOTS = {
    "controller": [_snap(2, 1e-5, 0.7), _snap(4, 3e-5, 0.6)],
    "static": [_snap(0, 0.0, 0.65), _snap(0, 0.0, 0.65)],
}
JUDGES = {"agreement_with_gold": 0.9, "cases": 6}


def _report() -> dict[str, Any]:
    return stream_report(
        IDS,
        _records(),
        ["small", "large"],
        ["controller", "static"],
        SNAPSHOTS,
        PRICES,
        JUDGES,
        window=3,
    )


def test_windows_cover_the_stream_in_order() -> None:
    assert windows(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]
    assert windows(0, 3) == []
    with pytest.raises(ValueError):
        windows(5, 0)


def test_measurement_costs_are_differences_of_cumulative_readings() -> None:
    snaps = [
        {"shadow_cost_usd": 1.0, "judge_cost_usd": 0.5},
        {"shadow_cost_usd": 1.0, "judge_cost_usd": 0.5},
        {"shadow_cost_usd": 3.0, "judge_cost_usd": 1.0},
    ]
    assert measurement_costs(snaps) == pytest.approx([1.5, 0.0, 2.5])


def test_overall_figures_follow_from_the_records() -> None:
    report = _report()
    controller = report["policies"]["controller"]["overall"]
    small_cost, large_cost = PRICES["small"].cost(10, 10), PRICES["large"].cost(10, 10)
    # Items 1 and 4 escalated to a right large answer; the rest keep small's answers.
    assert controller["served_quality"] == pytest.approx(6 / 6)
    assert controller["large_quality"] == pytest.approx(5 / 6)
    assert controller["quality_ratio"] == pytest.approx(6 / 5)
    served = 6 * small_cost + 2 * large_cost
    assert controller["served_cost_usd"] == pytest.approx(served)
    assert controller["cost_ratio"] == pytest.approx((served + 3e-5) / (6 * large_cost))
    assert controller["escalation_rate"] == pytest.approx(2 / 6)
    assert controller["samples"] == 4
    assert controller["thresholds"] == {"small": 0.6}
    static = report["policies"]["static"]["overall"]
    assert static["quality_ratio"] == pytest.approx((4 / 6) / (5 / 6))
    assert static["cost_ratio"] == pytest.approx(small_cost / large_cost)
    assert report["pinned"]["large"]["quality_ratio"] == 1.0
    assert report["pinned"]["large"]["cost_ratio"] == 1.0


def test_windows_split_quality_cost_and_measurement() -> None:
    rows = _report()["policies"]["controller"]["windows"]
    assert [r["items"] for r in rows] == [3, 3]
    assert [r["first_item"] for r in rows] == [0, 3]
    assert [r["measurement_cost_usd"] for r in rows] == pytest.approx([1e-5, 2e-5])
    assert [r["thresholds"] for r in rows] == [{"small": 0.7}, {"small": 0.6}]
    assert [r["samples"] for r in rows] == [2, 4]
    # Window 2 (items 3-5): served right on 3, 4 (escalated) and 5 (small); large wrong on 5.
    assert rows[1]["quality_ratio"] == pytest.approx(1.0 / (2 / 3))


def test_random_at_the_same_rate_is_the_expectation_over_the_pinned_arms() -> None:
    arms: dict[str, dict[str, LiveRecord]] = {}
    for record in _records():
        arms.setdefault(record.arm, {})[record.item_id] = record
    point = random_at_rate(IDS, arms, ["small", "large"], [2 / 3, 1 / 3])
    assert point["quality"] == pytest.approx(2 / 3 * 4 / 6 + 1 / 3 * 5 / 6)
    small_cost, large_cost = PRICES["small"].cost(10, 10), PRICES["large"].cost(10, 10)
    # Every item pays small; a third also pays large.
    assert point["cost_ratio"] == pytest.approx((small_cost + large_cost / 3) / large_cost)
    assert _report()["policies"]["controller"]["random_at_same_rate"] == pytest.approx(point)
    with pytest.raises(ValueError):
        random_at_rate(IDS, arms, ["small", "large"], [0.5, 0.4])


def test_price_sweep_reprices_the_cheapest_tier_only() -> None:
    target = target_prices(PRICES, ["small", "large"], 7.5)
    assert target["large"] == PRICES["large"]
    assert target["small"].input_usd_per_mtok == pytest.approx(1.0 / 7.5)
    assert target["small"].output_usd_per_mtok == pytest.approx(2.0 / 7.5)
    record = _record("x", "q0", "large", True, visited=["small", "large"])
    assert repriced(record, None) == pytest.approx(record.cost_usd)
    assert repriced(record, target) == pytest.approx(
        target["small"].cost(10, 10) + PRICES["large"].cost(10, 10)
    )
    sweep = _report()["policies"]["static"]["price_sweep"]
    assert sweep["configured"]["cost_ratio"] == pytest.approx(0.1)
    assert sweep["1/7.5"]["cost_ratio"] == pytest.approx(1 / 7.5)
    assert _report()["pinned"]["small"]["cost_ratio_at_1/7.5"] == pytest.approx(1 / 7.5)


def test_summary_json_has_the_promised_shape() -> None:
    summary = summary_json(_report())
    assert set(summary) == {"controller", "static"}
    for figures in summary.values():
        assert set(figures) == {
            "quality_ratio",
            "cost_ratio",
            "escalation_rate",
            "judge_agreement",
            "samples",
        }
        assert figures["judge_agreement"] == 0.9
    assert summary["static"]["samples"] == 0
    assert summary["controller"]["samples"] == 4


def test_missing_items_or_snapshots_are_errors() -> None:
    records = [r for r in _records() if not (r.arm == "static" and r.item_id == "q2")]
    with pytest.raises(ValueError, match="static lacks 1"):
        stream_report(
            IDS, records, ["small", "large"], ["static"], SNAPSHOTS, PRICES, JUDGES, window=3
        )
    with pytest.raises(ValueError, match="snapshots"):
        stream_report(
            IDS,
            _records(),
            ["small", "large"],
            ["static"],
            {"static": []},
            PRICES,
            JUDGES,
            window=3,
        )


def _learned_records() -> list[LiveRecord]:
    """Controller: items 1 and 4 start small and escalate (wasted). Learned start: item 1 is
    still wasted (first window, warm-up), item 4 starts at the largest tier."""
    rows = [
        replace(r, routed_tier="small", latency_seconds=4.0 if r.escalated else 1.0)
        for r in _records()
        if r.arm == "controller"
    ]
    rows += [r for r in _records() if r.arm in ("small", "large")]
    for k, item in enumerate(IDS):
        if k == 4:
            learned = _record(
                "learned-start",
                item,
                "large",
                LARGE_RIGHT[k],
                reason="start_tier",
                routed_tier="large",
                latency_seconds=2.5,
            )
        elif ESCALATED[k]:
            learned = _record(
                "learned-start",
                item,
                "large",
                LARGE_RIGHT[k],
                visited=["small", "large"],
                routed_tier="small",
                latency_seconds=4.0,
            )
        else:
            learned = _record(
                "learned-start",
                item,
                "small",
                SMALL_RIGHT[k],
                routed_tier="small",
                latency_seconds=1.0,
            )
        rows.append(learned)
    return rows


def test_start_tier_comparison_counts_wasted_calls_per_window_and_after_warmup() -> None:
    snapshots = {"controller": SNAPSHOTS["controller"], "learned-start": SNAPSHOTS["controller"]}
    report = stream_report(
        IDS,
        _learned_records(),
        ["small", "large"],
        ["controller", "learned-start"],
        snapshots,
        PRICES,
        JUDGES,
        window=3,
    )
    comparison = report["start_tier"]
    assert [(w["wasted_base"], w["wasted_learned"]) for w in comparison["windows"]] == [
        (1, 1),
        (1, 0),
    ]
    assert comparison["windows"][0]["avoided"] == 0.0
    assert comparison["windows"][1]["started_largest_learned"] == 1
    # After warm-up (items 3-5): the controller wasted item 4's call, the learned start did not.
    assert comparison["warmup_items"] == 3 and comparison["items"] == 3
    assert (comparison["wasted_base"], comparison["wasted_learned"]) == (1, 0)
    assert comparison["avoided"] == 1.0
    assert comparison["quality_base"] == comparison["quality_learned"]
    assert comparison["wasted_latency_p50_base_seconds"] == 4.0
    assert comparison["wasted_latency_p50_learned_seconds"] == 2.5
    # Item 4 no longer pays for the small tier's call.
    small_call = PRICES["small"].cost(10, 10)
    base_cost = sum(PRICES[t].cost(10, 10) for t in ("small", "small", "large")) + small_call
    assert comparison["cost_learned_vs_base"] == pytest.approx((base_cost - small_call) / base_cost)
    overall = report["policies"]["learned-start"]["overall"]
    assert overall["wasted_calls"] == 1
    assert overall["started_largest_share"] == pytest.approx(1 / 6)
    assert report["policies"]["controller"]["overall"]["wasted_calls"] == 2
    markdown = stream_markdown({**report, "judges": {}})
    assert "Learned start tier vs the controller alone" in markdown
    assert "| 3 | 1 | 0 | 100.0% |" in markdown


def test_no_start_tier_comparison_without_both_policies() -> None:
    assert "start_tier" not in _report()
