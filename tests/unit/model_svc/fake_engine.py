"""A scripted engine implementing the ``Engine`` protocol, for servicer unit tests.

Tokenization is one token per whitespace-separated word; generation replays a script of
deltas with a delay between them, and can fail (engine death or an unexpected error) after a
given number of deltas. It records what happened so tests can check aborts and leftovers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from model_svc.engines.base import (
    Delta,
    EngineDeadError,
    EngineInfo,
    FinishReason,
    GenerationRequest,
    PromptInput,
)


def script(words: list[str], logprob: float = -0.1) -> list[Delta]:
    """One delta per word, the last one finishing with STOP."""
    return [
        Delta(
            token_ids=(100 + index,),
            logprobs=(logprob,),
            text=word,
            finish_reason=FinishReason.STOP if index == len(words) - 1 else None,
        )
        for index, word in enumerate(words)
    ]


@dataclass
class ScriptedEngine:
    """Replays ``deltas``; see the module docstring."""

    deltas: list[Delta] = field(default_factory=lambda: script(["Hello", " world", "."]))
    delay: float = 0.0
    max_model_len: int = 64
    fail_after: int | None = None
    failure: type[Exception] = EngineDeadError
    alive: bool = False
    started: bool = False
    shut_down: bool = False
    running: set[str] = field(default_factory=set)
    aborted: list[str] = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)

    @property
    def info(self) -> EngineInfo:
        return EngineInfo("scripted 1.0", "scripted-model", self.max_model_len)

    async def start(self) -> None:
        self.started = True
        self.alive = True

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        return [1] + [2] * len(text.split())

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        if not self.alive:
            raise EngineDeadError("the inference engine died")
        self.requests.append(request)
        self.running.add(request.request_id)
        finished = False
        try:
            for index, delta in enumerate(self.deltas[: request.max_tokens]):
                if self.fail_after is not None and index >= self.fail_after:
                    if self.failure is EngineDeadError:
                        self.alive = False
                        raise EngineDeadError("the inference engine died")
                    raise self.failure("scripted failure")
                if self.delay:
                    await asyncio.sleep(self.delay)
                last = index == request.max_tokens - 1
                if last and delta.finish_reason is None:
                    delta = Delta(delta.token_ids, delta.logprobs, delta.text, FinishReason.LENGTH)
                yield delta
            finished = True
        finally:
            self.running.discard(request.request_id)
            if not finished:
                self.aborted.append(request.request_id)

    async def abort(self, request_id: str) -> None:
        self.running.discard(request_id)

    def is_alive(self) -> bool:
        return self.alive

    def num_unfinished_requests(self) -> int:
        return len(self.running)

    async def shutdown(self) -> None:
        self.alive = False
        self.shut_down = True
