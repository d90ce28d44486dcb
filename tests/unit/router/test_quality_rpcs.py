"""SubmitFeedback and GetQuality through a real router server over the fake tiers, with the
quality loop off (the null object) and on (state saved on stop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.unit.router.conftest import Stack
from tests.unit.router.routers import router_settings
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb


def generate() -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="Tell me about Roman aqueducts."),
        sampling=common_pb2.SamplingParams(max_tokens=16),
    )


async def test_without_the_loop_quality_is_disabled_and_feedback_refused(fresh: Stack) -> None:
    reply = await fresh.stub.GetQuality(rpb.GetQualityRequest(), timeout=5)
    assert not reply.enabled and not reply.thresholds and reply.overall.samples == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await fresh.stub.SubmitFeedback(
            rpb.SubmitFeedbackRequest(request_id="r1", score=1), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_with_the_loop_feedback_is_stored_and_state_saved(
    fresh: Stack, make_router: Callable[..., Any], tmp_path: Path
) -> None:
    settings = router_settings(
        {"small": [fresh.small.target], "large": [fresh.large.target]},
        # warmup "start": the small tier serves from the first request (the policy threshold).
        quality={
            "enabled": True,
            "warmup": "start",
            "state_dir": str(tmp_path),
            "report_interval_seconds": 0,
        },
    )
    app, stub = await make_router(settings)
    call = stub.Generate(generate(), timeout=10, metadata=(("x-request-id", "fb-1"),))
    events = [event async for event in call]
    finished = events[-1].finished
    # The caller sees the model's own confidence, whatever score the loop computed.
    assert finished.served_tier == "small" and finished.confidence.score == pytest.approx(0.9)
    stored = await stub.SubmitFeedback(
        rpb.SubmitFeedbackRequest(request_id="fb-1", score=0.75, comment="fine"), timeout=5
    )
    assert (stored.judge, stored.acceptable, stored.served_tier) == ("feedback", True, "small")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitFeedback(rpb.SubmitFeedbackRequest(request_id="nope", score=1), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitFeedback(rpb.SubmitFeedbackRequest(request_id="fb-1"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "score" in (caught.value.details() or "")
    reply = await stub.GetQuality(rpb.GetQualityRequest(), timeout=5)
    assert reply.enabled and [t.tier for t in reply.thresholds] == ["small"]
    assert {j.judge for j in reply.judges} >= {"feedback"} and reply.cost_usd > 0
    await app.stop()
    assert (tmp_path / "samples.jsonl").read_text().count('"feedback"') == 1
    assert (tmp_path / "thresholds.json").exists() and (tmp_path / "score_models.json").exists()
