"""API-key authentication over real gRPC: the router with ``auth.enabled`` over scripted tiers.

Covers the caller's view: no or a wrong key is UNAUTHENTICATED, a good key is served, a tier hint
without permission is PERMISSION_DENIED, over the tenant's rate is RESOURCE_EXHAUSTED with
RetryInfo, and health checking needs no key. The key itself never reaches the logs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_svc.auth import hash_key
from router_svc.server import RouterApp, build_router
from tests.unit.router.fake_model import FakeServer, start_fake
from tests.unit.router.routers import router_settings
from tierroute.v1 import common_pb2, router_service_pb2_grpc
from tierroute.v1 import router_service_pb2 as rpb

GOOD_KEY = "tr-test-4f1c0a9e"  # a test value, not a secret
RATE_KEY = "tr-test-rate-77d2"


@dataclass
class AuthStack:
    app: RouterApp
    channel: grpc.aio.Channel
    stub: router_service_pb2_grpc.RouterServiceStub
    small: FakeServer
    large: FakeServer


@pytest.fixture(scope="module")
async def auth_stack() -> AsyncIterator[AuthStack]:
    small = await start_fake("small")
    large = await start_fake("large")
    settings = router_settings(
        {"small": [small.target], "large": [large.target]},
        auth={
            "enabled": True,
            "keys": [
                {"tenant": "acme", "sha256": hash_key(GOOD_KEY), "rate_per_second": 1000},
                # Slow refill: the third request within the test is over the rate.
                {
                    "tenant": "slow",
                    "sha256": hash_key(RATE_KEY),
                    "rate_per_second": 0.1,
                    "burst": 2,
                },
            ],
        },
    )
    app = build_router(settings, classifier=None)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
    yield AuthStack(app, channel, stub, small, large)
    await channel.close()
    await app.stop()
    await small.server.stop(None)
    await large.server.stop(None)


def generate_request(**options: str) -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="Tell me about Roman aqueducts."),
        sampling=common_pb2.SamplingParams(max_tokens=16),
        options=rpb.RouteOptions(**options),
    )


async def generate(
    stack: AuthStack, key: str | None, req: rpb.RouterServiceGenerateRequest | None = None
) -> list[rpb.RouterServiceGenerateResponse]:
    metadata = None if key is None else (("authorization", f"Bearer {key}"),)
    call = stack.stub.Generate(req or generate_request(), timeout=10, metadata=metadata)
    return [event async for event in call]


async def test_no_key_is_unauthenticated(auth_stack: AuthStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await generate(auth_stack, None)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await auth_stack.stub.ListTiers(rpb.ListTiersRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_key_is_unauthenticated(auth_stack: AuthStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await generate(auth_stack, GOOD_KEY + "x")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert GOOD_KEY not in (info.value.details() or "")


async def test_good_key_is_served(auth_stack: AuthStack) -> None:
    events = await generate(auth_stack, GOOD_KEY)
    assert events[0].routed.decision.tier == "small"
    assert events[-1].finished.served_tier == "small"


async def test_tier_hint_without_permission_is_denied(auth_stack: AuthStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await generate(auth_stack, GOOD_KEY, generate_request(tier_hint="large"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "options.tier_hint" in (info.value.details() or "")


async def test_over_the_rate_is_resource_exhausted_with_retry_info(auth_stack: AuthStack) -> None:
    for _ in range(2):  # the burst
        await generate(auth_stack, RATE_KEY)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await generate(auth_stack, RATE_KEY)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    assert 5 < delay <= 10  # time until the next token at 0.1 tokens/s
    # Another tenant is unaffected.
    assert (await generate(auth_stack, GOOD_KEY))[-1].finished.served_tier == "small"


async def test_health_check_needs_no_key(auth_stack: AuthStack) -> None:
    health = health_pb2_grpc.HealthStub(auth_stack.channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
