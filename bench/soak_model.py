"""One scripted model tier for the soak: the real ``ModelServer`` over a scripted engine.

``python -m bench.soak_model --tier small --port P --metrics-port M [--unsure]`` (from the
repository root) runs ``model_svc``'s own server (servicer, validation, confidence, metrics, JSON
logs, health, ``/metrics``) with :class:`SoakEngine` in place of vLLM, so a soak of many minutes
measures the services' own memory and file descriptors, not an engine's.

The engine tokenizes by words and answers with ``max_tokens`` words (at most
:data:`MAX_ANSWER_TOKENS`), one every :data:`TOKEN_SECONDS`. The prompt's words steer it:
``hard`` makes the tier started with ``--unsure`` emit improbable tokens (the real confidence
computation scores them low, so the router escalates); ``slow`` stretches every token to
:data:`SLOW_TOKEN_SECONDS` (for deadline tests).
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

WORDS = ("The", " answer", " is", " forty", "-two", ",", " as", " always", ".")
MAX_ANSWER_TOKENS = 64
TOKEN_SECONDS = 0.002
SLOW_TOKEN_SECONDS = 0.05
CONTEXT_TOKENS = 32768
# The first prompt token carries the script's flags (a real tokenizer would emit BOS there).
PLAIN, HARD, SLOW = 1, 2, 4
SURE_LOGPROB = -0.02
UNSURE_LOGPROB = -2.5


class SoakEngine:
    """An ``Engine`` that replays :data:`WORDS`; see the module docstring for the script."""

    def __init__(self, unsure_on_hard: bool) -> None:
        self._unsure_on_hard = unsure_on_hard
        self._alive = False
        self._running: set[str] = set()

    @property
    def info(self) -> EngineInfo:
        """A scripted model with a long context (long prompts must fit)."""
        return EngineInfo("scripted 1.0", "soak-model", CONTEXT_TOKENS)

    async def start(self) -> None:
        """Nothing to load."""
        self._alive = True

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """One token per word, behind a first token holding the flags."""
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        words = text.split()
        flags = PLAIN | (HARD if "hard" in words else 0) | (SLOW if "slow" in words else 0)
        return [flags] + [3] * len(words)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the scripted words, a few milliseconds apart, as a real engine would."""
        flags = request.prompt_token_ids[0]
        unsure = self._unsure_on_hard and bool(flags & HARD)
        logprob = UNSURE_LOGPROB if unsure else SURE_LOGPROB
        pause = SLOW_TOKEN_SECONDS if flags & SLOW else TOKEN_SECONDS
        count = min(MAX_ANSWER_TOKENS, request.max_tokens)
        self._running.add(request.request_id)
        # A natural stop after MAX_ANSWER_TOKENS; cut by the caller's max_tokens before that.
        last_reason = FinishReason.LENGTH if count == request.max_tokens else FinishReason.STOP
        try:
            for index in range(count):
                await asyncio.sleep(pause)
                yield Delta(
                    token_ids=(100 + index % len(WORDS),),
                    logprobs=(logprob,),
                    text=WORDS[index % len(WORDS)],
                    finish_reason=last_reason if index == count - 1 else None,
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
    await ModelServer(settings, SoakEngine(unsure_on_hard)).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one scripted tier until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak_model")
    parser.add_argument("--tier", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--unsure", action="store_true", help='low confidence on "hard"')
    parser.add_argument("--max-streams", type=int, default=64, help="concurrent streams")
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
        limits={"max_concurrent_streams": args.max_streams},
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings, args.unsure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
