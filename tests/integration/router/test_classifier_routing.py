"""The router with each real classifier over scripted tiers: the static encoder (the default,
``make prepare`` builds it) and MiniLM in ONNX (``classifier.encoder: minilm``).

The classifier decides what the rules leave open: the decision carries its score and the
calibrated threshold from the encoder's own card, and is what Generate then serves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest

from router_svc.classifier import ClassifierSettings
from router_svc.server import RouterApp, build_router
from tests.unit.router.fake_model import FakeServer, start_fake
from tests.unit.router.routers import router_settings
from tierroute.classifier_artifact import CARD_FILE
from tierroute.v1 import common_pb2, router_service_pb2_grpc
from tierroute.v1 import router_service_pb2 as rpb

# Prompts no rule decides (no code, maths, steps, greeting or short fact question).
OPEN_PROMPTS = (
    "Tell me about Roman aqueducts.",
    "Summarise the causes of the French Revolution in a paragraph.",
    "Which is better for a beginner, a road bike or a gravel bike, and what matters most?",
    "Describe the taste of a ripe mango to someone who has never had one.",
)


@pytest.fixture(scope="module", params=["static", "minilm"])
async def classified(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RouterApp, router_service_pb2_grpc.RouterServiceStub, FakeServer]]:
    small = await start_fake("small")
    large = await start_fake("large")
    settings = router_settings(
        {"small": [small.target], "large": [large.target]},
        classifier={"enabled": True, "encoder": request.param},
        # No time budget: these tests check the classifier's decisions, on a shared machine.
        policy={"classifier_timeout_ms": 0},
    )
    app = build_router(settings)  # loads the encoder's artefact from the cache
    await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield app, router_service_pb2_grpc.RouterServiceStub(channel), small  # type: ignore[no-untyped-call]
    await app.stop()
    await small.server.stop(None)
    await large.server.stop(None)


def card_threshold(encoder: str) -> float:
    settings = ClassifierSettings(encoder=encoder)  # type: ignore[arg-type]
    if encoder == "static":
        path = settings.resolved_static_dir() / CARD_FILE
    else:
        path = settings.resolved_model_path().parent / CARD_FILE
    return float(json.loads(path.read_text())["calibration"]["threshold"])


async def test_the_classifier_decides_open_prompts_with_the_cards_threshold(
    classified: tuple[RouterApp, router_service_pb2_grpc.RouterServiceStub, FakeServer],
) -> None:
    app, stub, _ = classified
    assert app.classifier is not None
    threshold = card_threshold(app.settings.classifier.encoder)
    scores = []
    for prompt in OPEN_PROMPTS:
        reply = await stub.Route(
            rpb.RouteRequest(prompt=common_pb2.Prompt(text=prompt)), timeout=10
        )
        decision = reply.decision
        assert decision.reason == "classifier"
        assert decision.threshold == pytest.approx(threshold)
        assert 0 <= decision.classifier_score <= 1
        expected = "small" if decision.classifier_score >= threshold else "large"
        assert decision.tier == expected
        assert 0 < decision.decision_latency_ms < 250  # generous: the CI machine is shared
        scores.append(decision.classifier_score)
    assert len(set(scores)) == len(scores)  # real scores, not a constant


async def test_generate_serves_the_classifiers_tier(
    classified: tuple[RouterApp, router_service_pb2_grpc.RouterServiceStub, FakeServer],
) -> None:
    _, stub, _ = classified
    request = rpb.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(text=OPEN_PROMPTS[0]))
    events = [event async for event in stub.Generate(request, timeout=10)]
    decision = events[0].routed.decision
    assert decision.reason == "classifier"
    assert events[-1].finished.served_tier == decision.tier
