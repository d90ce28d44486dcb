"""The real model service over a scripted engine, as its own process, for the end-to-end test.

``python -m tests.observability.scripted_model --tier small --port P --metrics-port M`` runs
``model_svc``'s own ``ModelServer`` (servicer, validation, confidence, metrics, JSON logs,
health, ``/metrics``) with :class:`ScriptedEngine` in place of vLLM. Starting two vLLM engines
would add about a minute and nothing to what the test checks: that what Prometheus and the logs
record agrees with what callers were told.

The engine answers every prompt with :data:`WORDS`. On the tier started with ``--unsure``,
prompts containing "hard" get improbable tokens, so the real confidence computation scores them
low and the router escalates them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator, Sequence

from model_svc.config import ModelServiceSettings
from model_svc.engines.base import Delta, EngineInfo, FinishReason, GenerationRequest, PromptInput
from model_svc.server import ModelServer
from tierroute.logging import configure_logging

WORDS = ("The", " answer", " is", " forty", "-two", ".")
HARD_MARK = 7
"""First token id of a prompt that contains "hard"."""
SURE_LOGPROB = -0.02
UNSURE_LOGPROB = -2.5


class ScriptedEngine:
    """An ``Engine`` that tokenizes by words and replays :data:`WORDS`."""

    def __init__(self, unsure_on_hard: bool) -> None:
        self._unsure_on_hard = unsure_on_hard
        self._alive = False
        self._running: set[str] = set()

    @property
    def info(self) -> EngineInfo:
        """A scripted model with a small context."""
        return EngineInfo("scripted 1.0", "scripted-model", 2048)

    async def start(self) -> None:
        """Nothing to load."""
        self._alive = True

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """One token per word, behind a first token that marks "hard" prompts."""
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        first = HARD_MARK if "hard" in text else 1
        return [first] + [2] * len(text.split())

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the scripted words, a little apart, as a real engine would."""
        unsure = self._unsure_on_hard and request.prompt_token_ids[0] == HARD_MARK
        logprob = UNSURE_LOGPROB if unsure else SURE_LOGPROB
        count = min(len(WORDS), request.max_tokens)
        self._running.add(request.request_id)
        try:
            for index in range(count):
                await asyncio.sleep(0.002)
                yield Delta(
                    token_ids=(100 + index,),
                    logprobs=(logprob,),
                    text=WORDS[index],
                    finish_reason=FinishReason.STOP if index == count - 1 else None,
                )
        finally:
            self._running.discard(request.request_id)

    async def abort(self, request_id: str) -> None:
        """Forget a request (the generator's own cleanup does the rest)."""
        self._running.discard(request_id)

    def is_alive(self) -> bool:
        """True once started."""
        return self._alive

    def num_unfinished_requests(self) -> int:
        """Requests being generated."""
        return len(self._running)

    async def shutdown(self) -> None:
        """Stop."""
        self._alive = False


async def serve(settings: ModelServiceSettings, unsure_on_hard: bool) -> None:
    """Build the server inside the running loop (grpc.aio binds to it) and serve."""
    await ModelServer(settings, ScriptedEngine(unsure_on_hard)).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one scripted tier until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.observability.scripted_model")
    parser.add_argument("--tier", required=True)
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
        limits={"max_concurrent_streams": 8},
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings, args.unsure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
