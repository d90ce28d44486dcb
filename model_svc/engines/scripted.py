"""A scripted :class:`~model_svc.engines.base.Engine` for load tests, soaks and integration tests.

It loads nothing and answers in milliseconds, so the real ``ModelServer`` (servicer, validation,
confidence, metrics, health, graceful stop) can run as its own process without vLLM. What it does
is fixed by one frozen :class:`Script`:

- the answer: ``words`` (one token each, repeated up to ``tokens``), or the first :class:`Rule`
  whose ``contains`` is in the prompt (its own tokens and log-probability);
- timing: ``first_token_delay`` before the first token (a prefill), ``token_delay`` before each
  later one; prompts containing a ``slow`` word wait ``slow_token_delay`` before every token;
- confidence: tokens carry ``sure_logprob``, or ``unsure_logprob`` when the prompt contains an
  ``unsure`` word, so the real confidence computation scores them low and a router escalates;
- faults: ``die_after`` SIGKILLs the process once a request has streamed that many tokens (0: as
  it arrives), and ``events`` appends ``start``/``finish``/``abort`` lines per request.

Tokenization is one token per whitespace-separated word behind a first token that carries the
plan chosen for the prompt (where a real tokenizer puts BOS), so prompt token counts stay
plausible and :meth:`ScriptedEngine.generate`, which sees only token ids, knows what to answer.
The model server's own warm-up request is never delayed, killed or logged.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

from model_svc.engines.base import Delta, EngineInfo, FinishReason, GenerationRequest, PromptInput

DEFAULT_WORDS = ("The", " answer", " is", " forty", "-two", ".")
"""The default answer, one token per item."""
WARM_UP_ID = "warm-up"
"""Request id of ``ModelServer.warm_up``: no delay, death or event applies to it."""
_PLAN_BASE = 1
"""First prompt token of the plainest plan; see :meth:`ScriptedEngine.render_prompt`."""
_WORD_TOKEN = 2
_ANSWER_TOKEN_BASE = 100


def split_tokens(text: str) -> tuple[str, ...]:
    """Words with their leading whitespace (trailing whitespace as a last token): joined, the
    tokens give ``text`` back exactly."""
    return tuple(re.findall(r"\s*\S+|\s+$", text))


@dataclass(frozen=True)
class Rule:
    """A canned answer for prompts that contain ``contains`` (``""`` matches every prompt)."""

    contains: str
    tokens: tuple[str, ...]
    """The answer, one text per token."""
    logprob: float
    """Log-probability of every token of the answer."""

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("a rule needs at least one answer token")


@dataclass(frozen=True)
class Script:
    """Everything the scripted engine does; see the module docstring."""

    words: tuple[str, ...] = DEFAULT_WORDS
    """The default answer, one text per token, repeated when ``tokens`` asks for more."""
    tokens: int | None = None
    """Tokens of the default answer (None: ``len(words)``); the request's max_tokens cuts it."""
    rules: tuple[Rule, ...] = ()
    """Prompt-to-answer rules, tried in order before the default answer."""
    token_delay: float = 0.002
    """Seconds before each token after the first."""
    first_token_delay: float = 0.0
    """Seconds before the first token (a prefill)."""
    unsure: tuple[str, ...] = ()
    """Prompts containing any of these get ``unsure_logprob`` on the default answer."""
    sure_logprob: float = -0.02
    unsure_logprob: float = -2.5
    slow: tuple[str, ...] = ()
    """Prompts containing any of these wait ``slow_token_delay`` before every token."""
    slow_token_delay: float = 0.05
    die_after: int | None = None
    """SIGKILL the process once a request has streamed this many tokens (0: on arrival)."""
    events: Path | None = None
    """File to append ``start|finish|abort <request id>`` lines to."""
    model_name: str = "scripted-model"
    max_model_len: int = 2048
    """Prompt plus completion limit (tokens) reported to the server."""

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError("the default answer needs at least one word")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError("tokens must be at least 1")
        delays = (self.token_delay, self.first_token_delay, self.slow_token_delay)
        if min(delays) < 0:
            raise ValueError("delays must not be negative")
        if self.die_after is not None and self.die_after < 0:
            raise ValueError("die_after must not be negative")
        if self.max_model_len < 1:
            raise ValueError("max_model_len must be at least 1")


@dataclass(frozen=True)
class _Plan:
    """What to answer one prompt with (decoded from its first token)."""

    tokens: tuple[str, ...]
    logprob: float
    slow: bool


@dataclass
class ScriptedEngine:
    """An ``Engine`` that plays a :class:`Script`."""

    script: Script = field(default_factory=Script)
    _alive: bool = field(default=False, init=False)
    _running: set[str] = field(default_factory=set, init=False)

    @property
    def info(self) -> EngineInfo:
        """The scripted model's name and context."""
        return EngineInfo("scripted 1.0", self.script.model_name, self.script.max_model_len)

    async def start(self) -> None:
        """Nothing to load."""
        self._alive = True

    def _choice(self, text: str) -> int:
        """0: default sure, 1: default unsure, 2 + k: rule k."""
        for index, rule in enumerate(self.script.rules):
            if rule.contains in text:
                return 2 + index
        return int(any(word in text for word in self.script.unsure))

    def _plan(self, first_token: int) -> _Plan:
        """The plan :meth:`render_prompt` put into ``first_token`` (unknown ids: default)."""
        script = self.script
        choice, slow = divmod(max(first_token - _PLAN_BASE, 0), 2)
        if 2 <= choice < 2 + len(script.rules):
            rule = script.rules[choice - 2]
            return _Plan(rule.tokens, rule.logprob, bool(slow))
        count = script.tokens if script.tokens is not None else len(script.words)
        words = tuple(script.words[k % len(script.words)] for k in range(count))
        logprob = script.unsure_logprob if choice == 1 else script.sure_logprob
        return _Plan(words, logprob, bool(slow))

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """One token per word, behind a first token that encodes the prompt's plan."""
        text = prompt.text if prompt.text is not None else " ".join(t.content for t in prompt.chat)
        slow = any(word in text for word in self.script.slow)
        first = _PLAN_BASE + 2 * self._choice(text) + int(slow)
        return [first] + [_WORD_TOKEN] * len(text.split())

    def _record(self, kind: str, request_id: str) -> None:
        if self.script.events is not None and request_id != WARM_UP_ID:
            with self.script.events.open("a", encoding="utf-8") as out:
                out.write(f"{kind} {request_id}\n")

    def _maybe_die(self, request_id: str, streamed: int) -> None:
        if request_id != WARM_UP_ID and self.script.die_after == streamed:
            # A crash, not a shutdown: no trailers, no goodbye; the socket just goes away.
            os.kill(os.getpid(), signal.SIGKILL)

    def _delay(self, index: int, plan: _Plan) -> float:
        if plan.slow:
            return self.script.slow_token_delay
        return self.script.first_token_delay if index == 0 else self.script.token_delay

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the planned answer; STOP at its end, LENGTH when max_tokens cuts it."""
        plan = self._plan(request.prompt_token_ids[0] if request.prompt_token_ids else 0)
        warm_up = request.request_id == WARM_UP_ID
        count = min(len(plan.tokens), request.max_tokens)
        last_reason = FinishReason.STOP if count == len(plan.tokens) else FinishReason.LENGTH
        self._running.add(request.request_id)
        self._record("start", request.request_id)
        finished = False
        try:
            self._maybe_die(request.request_id, 0)
            for index in range(count):
                pause = 0.0 if warm_up else self._delay(index, plan)
                if pause:
                    await asyncio.sleep(pause)
                yield Delta(
                    token_ids=(_ANSWER_TOKEN_BASE + index,),
                    logprobs=(plan.logprob,),
                    text=plan.tokens[index],
                    finish_reason=last_reason if index == count - 1 else None,
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
        """True once started, until shut down."""
        return self._alive

    def num_unfinished_requests(self) -> int:
        """Requests being generated."""
        return len(self._running)

    async def shutdown(self) -> None:
        """Stop."""
        self._alive = False
