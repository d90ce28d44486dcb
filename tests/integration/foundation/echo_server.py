"""A scripted ModelService on the real bootstrap, for testing the bootstrap itself.

Streams the prompt back one word per delta, ``DELAY`` seconds apart. Run as a script:
``python echo_server.py PORT DELAY``; it prints nothing itself (the bootstrap logs JSON).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from tierroute.config import LoggingSettings, ServerSettings
from tierroute.errors import InvalidArgumentError
from tierroute.logging import configure_logging
from tierroute.server import ServerBootstrap, ServiceBinding, run_until_signal
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc


class EchoModel(model_service_pb2_grpc.ModelServiceServicer):
    """Echoes the prompt's words as token deltas."""

    def __init__(self, delay: float) -> None:
        self._delay = delay

    async def Generate(
        self,
        request: model_service_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[model_service_pb2.GenerateResponse]:
        if not request.prompt.text:
            raise InvalidArgumentError("prompt.text", "must not be empty")
        words = request.prompt.text.split()
        for index, word in enumerate(words):
            await asyncio.sleep(self._delay)
            yield model_service_pb2.GenerateResponse(
                delta=common_pb2.TokenDelta(text=word + " ", token_ids=[index], logprobs=[-0.1])
            )
        yield model_service_pb2.GenerateResponse(
            finished=model_service_pb2.Finished(
                finish_reason=common_pb2.FINISH_REASON_STOP,
                usage=common_pb2.Usage(prompt_tokens=len(words), completion_tokens=len(words)),
            )
        )

    async def GetModelInfo(
        self,
        request: model_service_pb2.GetModelInfoRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> model_service_pb2.GetModelInfoResponse:
        return model_service_pb2.GetModelInfoResponse(model_name="echo", tier="test")


def build(settings: ServerSettings, delay: float) -> ServerBootstrap:
    """A bootstrap serving the echo model."""
    servicer = EchoModel(delay)
    binding = ServiceBinding(
        name=model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
        register=lambda server: model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            servicer, server
        ),
    )
    return ServerBootstrap(settings, [binding], CollectorRegistry())


async def _main(port: int, delay: float) -> None:
    configure_logging(LoggingSettings())
    await run_until_signal(build(ServerSettings(port=port, grace_seconds=10), delay))


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), float(sys.argv[2])))
