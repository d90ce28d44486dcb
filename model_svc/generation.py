"""One generation end to end, without gRPC: admission, tokenization, streaming, accounting.

:class:`GenerationService` turns a validated request into a stream: one :class:`PromptAccepted`
(the prompt's token count, once it is checked and before the engine starts on it),
:class:`StreamedDelta` events and one final :class:`Outcome`. It enforces the concurrent-stream
limit (immediately, no queueing), checks the tokenized prompt against the configured prompt
limit (``limits.max_prompt_tokens``) and the context length, feeds the confidence tracker, and
records metrics. Closing the stream early (caller cancelled, deadline)
closes the engine stream, which aborts the request inside the engine.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from model_svc.confidence import ConfidenceParams, ConfidenceStats, ConfidenceTracker
from model_svc.config import LimitSettings
from model_svc.engines.base import (
    Delta,
    Engine,
    EngineDeadError,
    FinishReason,
    GenerationRequest,
)
from model_svc.metrics import ModelMetrics
from model_svc.validation import ValidatedRequest
from tierroute.errors import InvalidArgumentError, OverloadedError


@dataclass(frozen=True)
class PromptAccepted:
    """The prompt passed its checks and goes to the engine: from now on it is paid for."""

    prompt_tokens: int


@dataclass(frozen=True)
class StreamedDelta:
    """Tokens to forward, with the confidence of everything generated so far."""

    delta: Delta
    running_confidence: float


@dataclass(frozen=True)
class Outcome:
    """How a generation ended."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    """Equals the number of token ids streamed in the deltas."""
    confidence: ConfidenceStats
    ttft_seconds: float
    total_seconds: float


class GenerationService:
    """Runs generations on one engine within the configured limits."""

    def __init__(
        self,
        engine: Engine,
        limits: LimitSettings,
        confidence: ConfidenceParams,
        metrics: ModelMetrics,
        on_engine_dead: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._limits = limits
        self._confidence = confidence
        self._metrics = metrics
        self._on_engine_dead = on_engine_dead
        self._clock = clock
        self._active = 0
        metrics.max_concurrent_streams.set(limits.max_concurrent_streams)

    @property
    def active_streams(self) -> int:
        """Streams in progress."""
        return self._active

    def _admit(self) -> None:
        if not self._engine.is_alive():
            self._on_engine_dead()
            raise EngineDeadError("the inference engine is not running")
        limit = self._limits.max_concurrent_streams
        if self._active >= limit:
            raise OverloadedError(
                f"all {limit} concurrent streams of this model service are busy",
                retry_after_seconds=self._limits.retry_after_seconds,
            )
        # No await between the check and the increment: admission is atomic on the loop.
        self._active += 1
        self._metrics.active_streams.inc()

    async def generate(
        self, request: ValidatedRequest
    ) -> AsyncIterator[PromptAccepted | StreamedDelta | Outcome]:
        """Announce the prompt's size, stream the deltas of ``request``, end with its
        :class:`Outcome`."""
        self._admit()
        prompt_tokens = 0
        completion_tokens = 0
        try:
            start = self._clock()
            prompt_ids = await self._engine.render_prompt(request.prompt)
            # Checked on the rendered prompt (tokenized once, with its chat template, exactly as
            # it will be generated from), and before it counts as processed: it never is.
            limit = self._limits.max_prompt_tokens
            if limit is not None and len(prompt_ids) > limit:
                raise InvalidArgumentError(
                    "prompt",
                    f"is {len(prompt_ids)} tokens; the limit of this model service is "
                    f"{limit} prompt tokens (limits.max_prompt_tokens)",
                )
            prompt_tokens = len(prompt_ids)
            context = self._engine.info.max_model_len
            if prompt_tokens == 0:
                raise InvalidArgumentError("prompt", "tokenizes to no tokens")
            if prompt_tokens >= context:
                raise InvalidArgumentError(
                    "prompt",
                    f"is {prompt_tokens} tokens; the context length of this model is {context} "
                    "tokens (prompt plus at least one generated token)",
                )
            engine_request = GenerationRequest(
                # Unique per call even when a caller reuses its request id.
                request_id=uuid.uuid4().hex,
                prompt_token_ids=prompt_ids,
                max_tokens=min(request.max_tokens, context - prompt_tokens),
                temperature=request.temperature,
                top_p=request.top_p,
                stop=request.stop,
                seed=request.seed,
            )
            # Before the first token, so a caller who leaves early still knows what it spent.
            yield PromptAccepted(prompt_tokens)
            tracker = ConfidenceTracker(self._confidence)
            first: float | None = None
            last = start
            finish: FinishReason | None = None
            async with contextlib.aclosing(self._engine.generate(engine_request)) as stream:
                async for delta in stream:
                    now = self._clock()
                    count = len(delta.token_ids)
                    if count:
                        if first is None:
                            first = now
                            self._metrics.ttft_seconds.observe(now - start)
                        else:
                            # Deltas merge when the consumer lags: spread the gap per token.
                            for _ in range(count):
                                self._metrics.inter_token_latency_seconds.observe(
                                    (now - last) / count
                                )
                        last = now
                    tracker.add(delta.logprobs)
                    completion_tokens += count
                    finish = delta.finish_reason or finish
                    if count or delta.text:
                        yield StreamedDelta(delta, tracker.score())
            end = self._clock()
            stats = tracker.stats()
            self._metrics.confidence.observe(stats.score)
            yield Outcome(
                finish_reason=finish or FinishReason.STOP,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                confidence=stats,
                ttft_seconds=(first if first is not None else end) - start,
                total_seconds=end - start,
            )
        except EngineDeadError:
            self._on_engine_dead()
            raise
        finally:
            self._active -= 1
            self._metrics.active_streams.dec()
            # Tokens the engine processed are spent even when the caller went away.
            self._metrics.prompt_tokens.inc(prompt_tokens)
            self._metrics.completion_tokens.inc(completion_tokens)
