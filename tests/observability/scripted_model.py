"""A scripted ``ModelService`` for the end-to-end metrics test: fake model, real metrics.

It streams a few fixed tokens with a scripted confidence (low on the small tier for prompts
containing "hard", so the router escalates them) and records the model service's real metrics
(``model_svc.metrics.ModelMetrics``) on its own registry, served by the shared
``ServerBootstrap`` with health and ``/metrics`` like a real model service. The vLLM engine is
left out on purpose: starting two engines would add about a minute to the test and nothing to
what it checks (that every number Prometheus records agrees with what callers were told).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from model_svc.metrics import ModelMetrics
from tierroute.config import ServerSettings
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
WORDS = ("The", " answer", " is", " forty", "-two", ".")
MAX_STREAMS = 8


def prompt_text(prompt: common_pb2.Prompt) -> str:
    """The text of a prompt (the last message of a chat)."""
    if prompt.HasField("chat"):
        return prompt.chat.messages[-1].content
    return prompt.text


@dataclass
class ScriptedModel(model_service_pb2_grpc.ModelServiceServicer):
    """Streams :data:`WORDS`; confidence 0.3 on the small tier for "hard" prompts, else 0.9."""

    tier: str
    metrics: ModelMetrics
    completed: Counter[str] = field(default_factory=Counter)

    async def Generate(
        self,
        request: model_service_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[model_service_pb2.GenerateResponse]:
        """Stream the scripted answer, recording the model service's metrics as it goes."""
        started = time.perf_counter()
        text = prompt_text(request.prompt)
        confidence = 0.3 if self.tier == "small" and "hard" in text else 0.9
        prompt_tokens = len(text.split()) + 3
        self.metrics.active_streams.inc()
        try:
            last = started
            for index, word in enumerate(WORDS):
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                if index == 0:
                    self.metrics.ttft_seconds.observe(now - started)
                else:
                    self.metrics.inter_token_latency_seconds.observe(now - last)
                last = now
                yield model_service_pb2.GenerateResponse(
                    delta=common_pb2.TokenDelta(
                        text=word,
                        token_ids=[100 + index],
                        logprobs=[-0.05],
                        running_confidence=confidence,
                    )
                )
            self.metrics.prompt_tokens.inc(prompt_tokens)
            self.metrics.completion_tokens.inc(len(WORDS))
            self.metrics.confidence.observe(confidence)
            self.metrics.count_request("OK")
            self.completed[text] += 1
            yield model_service_pb2.GenerateResponse(
                finished=model_service_pb2.Finished(
                    finish_reason=common_pb2.FINISH_REASON_STOP,
                    usage=common_pb2.Usage(
                        prompt_tokens=prompt_tokens, completion_tokens=len(WORDS)
                    ),
                    confidence=common_pb2.Confidence(
                        score=confidence,
                        mean_logprob=-0.05,
                        token_count=len(WORDS),
                        method=common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC,
                    ),
                    ttft_seconds=0.002,
                    total_seconds=time.perf_counter() - started,
                )
            )
        except asyncio.CancelledError:
            self.metrics.count_request("CANCELLED")
            raise
        finally:
            self.metrics.active_streams.dec()

    async def GetModelInfo(
        self,
        request: model_service_pb2.GetModelInfoRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> model_service_pb2.GetModelInfoResponse:
        """Describe the scripted model."""
        return model_service_pb2.GetModelInfoResponse(
            model_name=f"scripted-{self.tier}",
            tier=self.tier,
            context_length_tokens=2048,
            max_output_tokens=256,
            max_concurrent_streams=MAX_STREAMS,
            engine="scripted",
        )


@dataclass
class ScriptedService:
    """A running scripted model service."""

    model: ScriptedModel
    bootstrap: ServerBootstrap

    @property
    def target(self) -> str:
        """gRPC target."""
        return f"127.0.0.1:{self.bootstrap.port}"

    @property
    def metrics_target(self) -> str:
        """``host:port`` of its ``/metrics``."""
        return f"127.0.0.1:{self.bootstrap.metrics_port}"


async def start_scripted(tier: str) -> ScriptedService:
    """Serve a :class:`ScriptedModel` for ``tier`` on free loopback ports, reporting SERVING."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = ModelMetrics(registry, tier)
    metrics.max_concurrent_streams.set(MAX_STREAMS)
    metrics.engine_up.set(1)
    model = ScriptedModel(tier, metrics)
    binding = ServiceBinding(
        SERVICE,
        lambda server: model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server),  # type: ignore[no-untyped-call]
    )
    settings = ServerSettings(host="127.0.0.1", port=0, metrics_port=0, grace_seconds=1)
    bootstrap = ServerBootstrap(settings, [binding], registry)
    await bootstrap.start()
    await bootstrap.set_serving(True)
    return ScriptedService(model, bootstrap)
