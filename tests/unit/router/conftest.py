"""A real router gRPC server in front of two scripted fake model services (shared per session)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from router_svc.config import RouterSettings
from router_svc.server import RouterApp, build_router
from tests.unit.router.fake_model import FakeServer, start_fake
from tests.unit.router.fakes import FakeClassifier
from tests.unit.router.routers import router_settings
from tierroute.v1 import router_service_pb2_grpc


@dataclass
class Stack:
    """Fakes, the router in front of them, and a client stub."""

    small: FakeServer
    large: FakeServer
    app: RouterApp
    classifier: FakeClassifier
    channel: grpc.aio.Channel
    stub: router_service_pb2_grpc.RouterServiceStub

    def reset(self) -> None:
        """Default fake behaviours and a confident classifier."""
        self.small.model.reset()
        self.large.model.reset()
        self.classifier.value = 0.9
        self.classifier.calls.clear()
        # Earlier tests' scripted failures must not leave a circuit open for the next one.
        for client in self.app.tiers.clients.values():
            for endpoint in client.endpoints:
                endpoint.breaker.record_success()


@dataclass
class RouterFactory:
    """Starts extra routers for tests that need their own settings; stops them at the end."""

    started: list[tuple[RouterApp, grpc.aio.Channel]]

    async def __call__(
        self, settings: RouterSettings, classifier: FakeClassifier | None = None
    ) -> tuple[RouterApp, router_service_pb2_grpc.RouterServiceStub]:
        app = build_router(settings, classifier=classifier or FakeClassifier())
        await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        self.started.append((app, channel))
        return app, router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    small = await start_fake("small")
    large = await start_fake("large")
    classifier = FakeClassifier(0.9)
    settings = router_settings({"small": [small.target], "large": [large.target]})
    app = build_router(settings, classifier=classifier)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
    yield Stack(small, large, app, classifier, channel, stub)
    await channel.close()
    await app.stop()
    await small.server.stop(None)
    await large.server.stop(None)


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The shared stack with default behaviours."""
    stack.reset()
    return stack


@pytest.fixture
async def make_router() -> AsyncIterator[Callable[..., Any]]:
    factory = RouterFactory([])
    yield factory
    for app, channel in factory.started:
        await channel.close()
        await app.stop()
