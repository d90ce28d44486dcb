"""A scripted ``ModelService`` served over real gRPC for the router's servicer tests.

Real gRPC, fake model: each server streams scripted tokens with a scripted confidence, can fail
before or after its first token, be slow, or report NOT_SERVING; it records what it received
(request ids, deadlines) and whether a stream was cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tierroute.status import REQUEST_ID_KEY
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

SERVICE = "tierroute.v1.ModelService"


@dataclass
class Behaviour:
    """What the fake does on the next calls."""

    words: tuple[str, ...] = ("Paris", " is", " the", " capital", ".")
    confidence: float = 0.9
    running: float | None = None
    prompt_tokens: int = 12
    fail_code: grpc.StatusCode | None = None
    fail_after: int = 0
    """Tokens sent before failing with ``fail_code``."""
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    """Seconds between the prompt's count (initial metadata) and the first token."""
    report_prompt: bool = True
    """Send the prompt's token count in the initial metadata before the first token, as the
    model service does."""


@dataclass
class Seen:
    """One call as the fake received it."""

    request: model_service_pb2.GenerateRequest
    request_id: str
    time_remaining: float | None
    cancelled: bool = False
    completed: bool = False


class FakeModel(model_service_pb2_grpc.ModelServiceServicer):
    """The scripted servicer; change ``behaviour`` between calls."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self.behaviour = Behaviour()
        self.calls: list[Seen] = []
        self.active = 0

    def reset(self) -> None:
        """Default behaviour, no recorded calls."""
        self.behaviour = Behaviour()
        self.calls = []

    async def Generate(
        self,
        request: model_service_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        seen = Seen(request, str(metadata.get(REQUEST_ID_KEY, "")), context.time_remaining())
        self.calls.append(seen)
        b = self.behaviour
        self.active += 1
        try:
            if b.report_prompt:
                await context.send_initial_metadata(
                    (("tierroute-prompt-tokens", str(b.prompt_tokens)),)
                )
            if b.first_token_delay:
                await asyncio.sleep(b.first_token_delay)
            for i, word in enumerate(b.words):
                if b.fail_code is not None and i == b.fail_after:
                    await context.abort(b.fail_code, f"scripted {b.fail_code.name}")
                if b.token_delay:
                    await asyncio.sleep(b.token_delay)
                yield model_service_pb2.GenerateResponse(
                    delta=common_pb2.TokenDelta(
                        text=word,
                        token_ids=[100 + i],
                        logprobs=[-0.1],
                        running_confidence=b.confidence if b.running is None else b.running,
                    )
                )
            if b.fail_code is not None:
                await context.abort(b.fail_code, f"scripted {b.fail_code.name}")
            yield model_service_pb2.GenerateResponse(
                finished=model_service_pb2.Finished(
                    finish_reason=common_pb2.FINISH_REASON_STOP,
                    usage=common_pb2.Usage(
                        prompt_tokens=b.prompt_tokens, completion_tokens=len(b.words)
                    ),
                    confidence=common_pb2.Confidence(
                        score=b.confidence,
                        mean_logprob=-0.1,
                        token_count=len(b.words),
                        method=common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC,
                    ),
                )
            )
            seen.completed = True
        except asyncio.CancelledError:
            seen.cancelled = True
            raise
        finally:
            self.active -= 1


@dataclass
class FakeServer:
    """A running fake model service."""

    model: FakeModel
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """Where to reach it."""
        return f"127.0.0.1:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING on grpc.health.v1."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(SERVICE, status)
        await self.health.set("", status)


async def start_fake(tier: str, port: int = 0) -> FakeServer:
    """Serve a :class:`FakeModel` on a loopback port (0: a free one)."""
    model = FakeModel(tier)
    server = grpc.aio.server()
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    fake = FakeServer(model, server, health_servicer, bound)
    await fake.set_serving(True)
    return fake
