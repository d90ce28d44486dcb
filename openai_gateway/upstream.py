"""The endpoint's one gRPC channel to the router: Generate streams, a cached tier list, feedback.

The channel is plaintext or TLS as ``router.tls`` says (:func:`tierroute.transport.open_channel`,
the same code the router uses towards its tiers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from openai_gateway.config import UpstreamSettings
from tierroute.transport import open_channel
from tierroute.v1 import router_service_pb2, router_service_pb2_grpc

ROUTER_SERVICE = "tierroute.v1.RouterService"

Metadata = tuple[tuple[str, str], ...]


class RouterUpstream:
    """Calls ``tierroute.v1.RouterService`` with each caller's credentials and deadline.

    Build it inside the running event loop (``grpc.aio`` channels bind to the loop).
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        # The files are read once, here: a new CA or client certificate needs a restart (a
        # renewed router certificate from the same CA does not).
        self._channel = open_channel(settings.target, settings.tls, options)
        self._stub = router_service_pb2_grpc.RouterServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._tiers: tuple[Any, ...] = ()
        self._tiers_at = -float("inf")

    async def close(self) -> None:
        """Close the channel (in-flight calls are cancelled)."""
        await self._channel.close()

    def generate(
        self,
        request: router_service_pb2.RouterServiceGenerateRequest,
        metadata: Metadata,
        timeout: float,
    ) -> Any:
        """Start a ``Generate`` stream; the caller iterates it and cancels it when done."""
        return self._stub.Generate(request, timeout=timeout, metadata=metadata)

    async def submit_feedback(
        self,
        request: router_service_pb2.SubmitFeedbackRequest,
        metadata: Metadata,
        timeout: float,
    ) -> router_service_pb2.SubmitFeedbackResponse:
        """Store the caller's judgment of a request it was served (``SubmitFeedback``)."""
        reply: router_service_pb2.SubmitFeedbackResponse = await self._stub.SubmitFeedback(
            request, timeout=timeout, metadata=metadata
        )
        return reply

    async def list_tiers(self, metadata: Metadata, timeout: float) -> Sequence[Any]:
        """The configured tiers, cheapest first (``tierroute.v1.TierInfo``), asked afresh."""
        reply = await self._stub.ListTiers(
            router_service_pb2.ListTiersRequest(), timeout=timeout, metadata=metadata
        )
        self._tiers = tuple(reply.tiers)
        self._tiers_at = time.monotonic()
        return self._tiers

    async def serving(self, timeout: float) -> bool:
        """Whether the router reports SERVING on its gRPC health service (open without a key)."""
        reply = await self._health.Check(
            health_pb2.HealthCheckRequest(service=ROUTER_SERVICE), timeout=timeout
        )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def tier_names(self, metadata: Metadata, timeout: float) -> tuple[str, ...]:
        """Tier names, from a copy at most ``tiers_cache_seconds`` old (names rarely change)."""
        if time.monotonic() - self._tiers_at > self._settings.tiers_cache_seconds:
            await self.list_tiers(metadata, timeout)
        return tuple(tier.name for tier in self._tiers)
