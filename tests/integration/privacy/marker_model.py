"""The real model service over a scripted engine whose answers carry a marker, as a process.

``python -m tests.integration.privacy.marker_model --tier small --marker M --port P
--metrics-port Q [--unsure]`` runs ``model_svc``'s own ``ModelServer`` (servicer, validation,
metrics, JSON logs, the shared-secret interceptor when ``TIERROUTE_AUTH__*`` asks for it) with an
engine that answers every prompt with a sentence containing ``M``, so a test can look for the
completion text wherever it must not be. Prompts with "hard" get a low confidence on the
``--unsure`` tier (see ``tests/observability/scripted_model.py``), so the router escalates them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator, Sequence

from model_svc.config import ModelServiceSettings
from model_svc.engines.base import Delta, FinishReason, GenerationRequest
from model_svc.server import ModelServer
from tests.observability.scripted_model import (
    HARD_MARK,
    SURE_LOGPROB,
    UNSURE_LOGPROB,
    ScriptedEngine,
)
from tierroute.logging import configure_logging


class MarkerEngine(ScriptedEngine):
    """A :class:`ScriptedEngine` whose answer is ``The answer is <marker>.``"""

    def __init__(self, unsure_on_hard: bool, marker: str) -> None:
        super().__init__(unsure_on_hard)
        self._words = ("The", " answer", " is", f" {marker}", ".")
        self._unsure = unsure_on_hard

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the marked sentence, one word per token."""
        unsure = self._unsure and request.prompt_token_ids[0] == HARD_MARK
        logprob = UNSURE_LOGPROB if unsure else SURE_LOGPROB
        count = min(len(self._words), request.max_tokens)
        for index in range(count):
            await asyncio.sleep(0.001)
            yield Delta(
                token_ids=(100 + index,),
                logprobs=(logprob,),
                text=self._words[index],
                finish_reason=FinishReason.STOP if index == count - 1 else None,
            )


async def serve(settings: ModelServiceSettings, engine: MarkerEngine) -> None:
    """Build the server inside the running loop (grpc.aio binds to it) and serve."""
    await ModelServer(settings, engine).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one marked tier until SIGTERM (logging and peer auth from ``TIERROUTE_*``)."""
    parser = argparse.ArgumentParser(prog="python -m tests.integration.privacy.marker_model")
    parser.add_argument("--tier", required=True)
    parser.add_argument("--marker", required=True, help="text every answer contains")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--unsure", action="store_true", help='low confidence on "hard"')
    args = parser.parse_args(argv)
    settings = ModelServiceSettings.load(
        None,
        tier=args.tier,
        server={
            "host": "127.0.0.1",
            "port": args.port,
            "metrics_port": args.metrics_port,
            "grace_seconds": 1,
        },
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings, MarkerEngine(args.unsure, args.marker)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
