"""The real model service over a scripted engine with fault knobs, as its own process.

``python -m tests.integration.faults.scripted_model --tier small --port P --metrics-port M``
runs ``model_svc``'s own ``ModelServer`` (servicer, validation, confidence, metrics, health,
graceful stop) with :class:`FaultEngine` in place of vLLM, so fault tests kill, slow down and
restart real processes in about a second each instead of loading engines for minutes.

Knobs (flags): ``--tokens`` to emit, ``--token-delay`` between tokens, ``--first-token-delay``
(a slow prefill), ``--unsure WORD`` (prompts containing WORD get improbable tokens, so the real
confidence computation scores them low and the router escalates them), ``--die-after N``
(the process SIGKILLs itself once a request has streamed N tokens; 0: as the request arrives)
and ``--events FILE`` (one line per engine request: ``start``, ``finish`` or ``abort`` and its
id), which is how a test sees that a request was aborted inside the engine. The engine's count
of unfinished requests is also on ``/metrics``
(``tierroute_model_engine_unfinished_requests``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_svc.config import ModelServiceSettings
from model_svc.engines.base import Delta, EngineInfo, FinishReason, GenerationRequest, PromptInput
from model_svc.server import ModelServer
from tierroute.logging import configure_logging

WORDS = ("The", " answer", " is", " forty", "-two", ".")
UNSURE_MARK = 7
"""First prompt token id of a prompt that contains an ``--unsure`` word."""
SURE_LOGPROB = -0.02
UNSURE_LOGPROB = -2.5
WARM_UP_ID = "warm-up"
"""Request id of the model server's own warm-up generation: no knob applies to it."""


@dataclass(frozen=True)
class Script:
    """What the engine does with every request."""

    tokens: int = 6
    token_delay: float = 0.005
    first_token_delay: float = 0.0
    unsure: tuple[str, ...] = ()
    die_after: int | None = None
    events: Path | None = None


class FaultEngine:
    """An ``Engine`` that tokenizes by words and replays :data:`WORDS` as the script says."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._alive = False
        self._running: set[str] = set()

    @property
    def info(self) -> EngineInfo:
        """A scripted model with a small context."""
        return EngineInfo("scripted-faults 1.0", "scripted-model", 2048)

    async def start(self) -> None:
        """Nothing to load."""
        self._alive = True

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """One token per word, behind a first token that marks unsure prompts."""
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        first = UNSURE_MARK if any(word in text for word in self._script.unsure) else 1
        return [first] + [2] * len(text.split())

    def _record(self, kind: str, request_id: str) -> None:
        if self._script.events is not None and request_id != WARM_UP_ID:
            with self._script.events.open("a", encoding="utf-8") as out:
                out.write(f"{kind} {request_id}\n")

    def _maybe_die(self, request_id: str, streamed: int) -> None:
        if request_id != WARM_UP_ID and self._script.die_after == streamed:
            # A crash, not a shutdown: no trailers, no goodbye; the socket just goes away.
            os.kill(os.getpid(), signal.SIGKILL)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the scripted words; closing early records an abort."""
        script = self._script
        warm_up = request.request_id == WARM_UP_ID
        logprob = UNSURE_LOGPROB if request.prompt_token_ids[0] == UNSURE_MARK else SURE_LOGPROB
        count = min(script.tokens, request.max_tokens)
        self._running.add(request.request_id)
        self._record("start", request.request_id)
        finished = False
        try:
            self._maybe_die(request.request_id, 0)
            if not warm_up and script.first_token_delay:
                await asyncio.sleep(script.first_token_delay)
            for index in range(count):
                if index and not warm_up:
                    await asyncio.sleep(script.token_delay)
                last = index == count - 1
                yield Delta(
                    token_ids=(100 + index,),
                    logprobs=(logprob,),
                    text=WORDS[index % len(WORDS)],
                    finish_reason=FinishReason.LENGTH if last else None,
                )
                self._maybe_die(request.request_id, index + 1)
            finished = True
        finally:
            self._running.discard(request.request_id)
            self._record("finish" if finished else "abort", request.request_id)

    async def abort(self, request_id: str) -> None:
        """Forget a request (the generator's own cleanup records the abort)."""
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


async def serve(settings: ModelServiceSettings, script: Script) -> None:
    """Build the server inside the running loop (grpc.aio binds to it) and serve."""
    await ModelServer(settings, FaultEngine(script)).run()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The knobs; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tests.integration.faults.scripted_model")
    parser.add_argument("--tier", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=6, help="tokens per answer")
    parser.add_argument("--token-delay", type=float, default=0.005, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="prefill seconds")
    parser.add_argument("--unsure", action="append", default=[], help="low confidence on WORD")
    parser.add_argument("--die-after", type=int, default=None, help="SIGKILL after N tokens")
    parser.add_argument("--events", type=Path, default=None, help="engine request log")
    parser.add_argument("--max-streams", type=int, default=32)
    parser.add_argument("--grace", type=float, default=1.0, help="drain seconds on SIGTERM")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one scripted tier until SIGTERM (or a scripted death)."""
    args = parse_args(argv)
    script = Script(
        tokens=args.tokens,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        unsure=tuple(args.unsure),
        die_after=args.die_after,
        events=args.events,
    )
    settings = ModelServiceSettings.load(
        None,
        tier=args.tier,
        server={
            "host": "127.0.0.1",
            "port": args.port,
            "metrics_port": args.metrics_port,
            "grace_seconds": args.grace,
        },
        limits={"max_concurrent_streams": args.max_streams},
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
        engine={"health_interval_seconds": 0.2},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings, script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
