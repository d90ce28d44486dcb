"""Scripted ``ModelService`` tiers of a chain, over real gRPC on loopback, for the real router.

Each tier answers ``<tier> answers here`` word by word. Its confidence is low when the prompt's
last message contains one of the tier's ``unsure_on`` words, so a test decides per prompt how far
up the chain the router must go. Every tier reports SERVING on ``grpc.health.v1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

M = model_service_pb2
SURE, UNSURE = 0.95, 0.1
PROMPT_TOKENS = 10


@dataclass
class ChainTier(model_service_pb2_grpc.ModelServiceServicer):
    """One scripted tier; ``prompts`` records the last message of every call it received."""

    tier: str
    unsure_on: frozenset[str]
    prompts: list[str] = field(default_factory=list)

    def words(self) -> list[str]:
        """The tier's answer, one token per word."""
        return [self.tier, " answers", " here"]

    async def Generate(self, request: M.GenerateRequest, context: Any) -> AsyncIterator[Any]:
        """Stream the answer, then ``Finished`` with the scripted confidence."""
        prompt = request.prompt
        text = prompt.chat.messages[-1].content if prompt.HasField("chat") else prompt.text
        self.prompts.append(text)
        confidence = UNSURE if any(word in text for word in self.unsure_on) else SURE
        words = self.words()
        for i, word in enumerate(words):
            yield M.GenerateResponse(
                delta=common_pb2.TokenDelta(
                    text=word, token_ids=[i + 1], logprobs=[-0.1], running_confidence=confidence
                )
            )
        yield M.GenerateResponse(
            finished=M.Finished(
                finish_reason=common_pb2.FINISH_REASON_STOP,
                usage=common_pb2.Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=len(words)),
                confidence=common_pb2.Confidence(
                    score=confidence, method=common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC
                ),
            )
        )


@dataclass
class ServedTier:
    """A scripted tier and the server it runs on."""

    model: ChainTier
    server: grpc.aio.Server
    address: str


async def serve_tier(tier: str, unsure_on: frozenset[str]) -> ServedTier:
    """Serve a scripted tier on a free loopback port (in the running event loop)."""
    model = ChainTier(tier, unsure_on)
    server = grpc.aio.server()
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    await checker.set("tierroute.v1.ModelService", health_pb2.HealthCheckResponse.SERVING)
    return ServedTier(model, server, f"127.0.0.1:{port}")
