"""The Python client against a real gRPC server running a scripted RouterService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from tierroute.client import Escalation, RetryableRouterError, Router, RouterError, TextEvent
from tierroute.config import ServerSettings
from tierroute.errors import InvalidArgumentError, UnavailableError
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

R = router_service_pb2


class ScriptedRouter(router_service_pb2_grpc.RouterServiceServicer):
    """Plays a script chosen by the prompt text."""

    def __init__(self) -> None:
        self.calls = 0
        self.metadata: list[dict[str, str]] = []

    async def Route(self, request: R.RouteRequest, context: Any) -> R.RouteResponse:
        self.calls += 1
        if request.prompt.WhichOneof("kind") != "chat" and not request.prompt.text:
            raise InvalidArgumentError("prompt", "must not be empty")
        return R.RouteResponse(
            decision=R.Decision(tier="small", reason="classifier", classifier_score=0.8)
        )

    async def Generate(
        self, request: R.RouterServiceGenerateRequest, context: Any
    ) -> AsyncIterator[R.RouterServiceGenerateResponse]:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        chat = request.prompt.chat.messages
        text = request.prompt.text or (chat[-1].content if chat else "")
        if text == "flaky" and self.calls == 1:
            raise UnavailableError("tier restarting")
        yield R.RouterServiceGenerateResponse(
            routed=R.Routed(
                decision=R.Decision(tier="small", reason="classifier"), request_id="rid"
            )
        )
        if text == "break-after-first":
            raise UnavailableError("tier died")
        if text == "slow":
            await asyncio.sleep(10)
        yield R.RouterServiceGenerateResponse(delta=common_pb2.TokenDelta(text="wrong "))
        if text in ("escalate", "flaky"):
            yield R.RouterServiceGenerateResponse(
                escalated=R.Escalated(
                    from_tier="small",
                    to_tier="large",
                    cause=R.ESCALATION_CAUSE_LOW_CONFIDENCE,
                    confidence_score=0.2,
                )
            )
            yield R.RouterServiceGenerateResponse(delta=common_pb2.TokenDelta(text="right"))
        served = "large" if text in ("escalate", "flaky") else "small"
        yield R.RouterServiceGenerateResponse(
            finished=R.RouterFinished(
                served_tier=served,
                cost_usd=1.0,
                baseline_cost_usd=3.0,
                savings_usd=2.0,
                escalated=served == "large",
                tier_usage=[
                    R.TierUsage(
                        tier=served, usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=2)
                    )
                ],
                confidence=common_pb2.Confidence(score=0.9),
            )
        )


@pytest.fixture
async def router_server() -> AsyncIterator[tuple[ScriptedRouter, int]]:
    servicer = ScriptedRouter()
    binding = ServiceBinding(
        "tierroute.v1.RouterService",
        lambda s: router_service_pb2_grpc.add_RouterServiceServicer_to_server(servicer, s),
    )
    bootstrap = ServerBootstrap(
        ServerSettings(metrics_port=None, grace_seconds=1), [binding], CollectorRegistry()
    )
    await bootstrap.start()
    yield servicer, bootstrap.port
    await bootstrap.stop()


async def test_complete_keeps_only_the_served_text(
    router_server: tuple[ScriptedRouter, int],
) -> None:
    _, port = router_server
    async with Router(f"127.0.0.1:{port}", api_key="k1", timeout=5) as router:
        result = await router.complete("escalate")
    assert result.text == "right"
    assert result.finished.tier == "large" and result.finished.escalated
    assert result.escalations[0].cause == "low_confidence"
    assert (result.finished.cost_usd, result.finished.savings_usd) == (1.0, 2.0)
    assert result.finished.completion_tokens == 2


async def test_events_are_typed_and_tagged_with_the_tier(
    router_server: tuple[ScriptedRouter, int],
) -> None:
    servicer, port = router_server
    async with Router(f"127.0.0.1:{port}", api_key="secret", timeout=5) as router:
        events = [e async for e in router.generate("escalate")]
    texts = [(e.tier, e.text) for e in events if isinstance(e, TextEvent)]
    assert texts == [("small", "wrong "), ("large", "right")]
    assert any(isinstance(e, Escalation) for e in events)
    assert servicer.metadata[0]["authorization"] == "Bearer secret"


async def test_unavailable_before_first_event_is_retried(
    router_server: tuple[ScriptedRouter, int],
) -> None:
    servicer, port = router_server
    async with Router(f"127.0.0.1:{port}", timeout=5, backoff_seconds=0.01) as router:
        result = await router.complete("flaky")
    assert result.text == "right"
    assert servicer.calls == 2


async def test_unavailable_after_first_event_is_not_retried(
    router_server: tuple[ScriptedRouter, int],
) -> None:
    servicer, port = router_server
    async with Router(f"127.0.0.1:{port}", timeout=5, backoff_seconds=0.01) as router:
        with pytest.raises(RetryableRouterError) as caught:
            await router.complete("break-after-first")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


async def test_invalid_argument_carries_the_field(
    router_server: tuple[ScriptedRouter, int],
) -> None:
    _, port = router_server
    async with Router(f"127.0.0.1:{port}", timeout=5) as router:
        with pytest.raises(RouterError) as caught:
            await router.route("")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details[0].field_violations[0].field == "prompt"


async def test_deadline_is_enforced(router_server: tuple[ScriptedRouter, int]) -> None:
    _, port = router_server
    async with Router(f"127.0.0.1:{port}", timeout=0.5) as router:
        with pytest.raises(RouterError) as caught:
            await router.complete("slow")
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_route_returns_the_decision(router_server: tuple[ScriptedRouter, int]) -> None:
    _, port = router_server
    async with Router(f"127.0.0.1:{port}", timeout=5) as router:
        decision = await router.route([("user", "hi")])
        assert decision.tier == "small" and decision.classifier_score == pytest.approx(0.8)
        with pytest.raises(ValueError, match="unknown role"):
            await router.route([("robot", "hi")])
