"""Scripted ``ModelService`` tiers over real gRPC, for the real router behind the endpoint.

The answer and its confidence follow the prompt's last text: a prompt containing ``hard`` gets a
low confidence from the ``small`` tier (so the router escalates), ``slow`` streams one token per
half second. Every tier reports SERVING on ``grpc.health.v1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

M = model_service_pb2


class ScriptedTier(model_service_pb2_grpc.ModelServiceServicer):
    """Answers ``<tier> says hi`` word by word, with a confidence from the script."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self.cancelled = 0

    async def Generate(self, request: M.GenerateRequest, context: Any) -> AsyncIterator[Any]:
        prompt = request.prompt
        text = prompt.chat.messages[-1].content if prompt.HasField("chat") else prompt.text
        confidence = 0.1 if "hard" in text and self.tier == "small" else 0.95
        words = [self.tier, " says", " hi"]
        limit = request.sampling.max_tokens or len(words)
        try:
            for i, word in enumerate(words[:limit]):
                if "slow" in text:
                    await asyncio.sleep(0.5)
                yield M.GenerateResponse(
                    delta=common_pb2.TokenDelta(
                        text=word, token_ids=[i + 1], logprobs=[-0.1], running_confidence=confidence
                    )
                )
            reason = (
                common_pb2.FINISH_REASON_LENGTH
                if limit < len(words)
                else common_pb2.FINISH_REASON_STOP
            )
            yield M.GenerateResponse(
                finished=M.Finished(
                    finish_reason=reason,
                    usage=common_pb2.Usage(prompt_tokens=10, completion_tokens=min(limit, 3)),
                    confidence=common_pb2.Confidence(
                        score=confidence, method=common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC
                    ),
                )
            )
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def start_tier(tier: str) -> tuple[ScriptedTier, grpc.aio.Server, int]:
    """Serve a scripted tier on a free loopback port."""
    model = ScriptedTier(tier)
    server = grpc.aio.server()
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    await checker.set("tierroute.v1.ModelService", health_pb2.HealthCheckResponse.SERVING)
    return model, server, port
