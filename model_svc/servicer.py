"""``tierroute.v1.ModelService``: a thin adapter between the protos and the generation service.

Domain errors raised here become gRPC statuses in the shared interceptor; this module only
converts messages, sends the prompt's token count in the initial metadata
(``tierroute-prompt-tokens``, before the first token), sets the ``tierroute-confidence`` trailer
and counts outcomes by status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog

from model_svc.config import ModelServiceSettings
from model_svc.engines.base import Engine, FinishReason
from model_svc.generation import GenerationService, Outcome, PromptAccepted, StreamedDelta
from model_svc.metrics import ModelMetrics
from model_svc.validation import validate_generate
from tierroute.errors import TierrouteError
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

CONFIDENCE_TRAILER = "tierroute-confidence"
"""Trailing metadata key carrying ``Finished.confidence.score`` as a decimal string."""
PROMPT_TOKENS_KEY = "tierroute-prompt-tokens"
"""Initial metadata key: the prompt's token count (decimal), sent before the first token so
that a caller who cancels, or whose deadline passes, still pays for the prompt."""

_FINISH = {
    FinishReason.STOP: common_pb2.FINISH_REASON_STOP,
    FinishReason.LENGTH: common_pb2.FINISH_REASON_LENGTH,
    FinishReason.ABORTED: common_pb2.FINISH_REASON_ABORTED,
}
_log = structlog.get_logger("model_svc")
Context = grpc.aio.ServicerContext[Any, Any]


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """Serves one model tier."""

    def __init__(
        self,
        settings: ModelServiceSettings,
        service: GenerationService,
        engine: Engine,
        metrics: ModelMetrics,
    ) -> None:
        self._settings = settings
        self._service = service
        self._engine = engine
        self._metrics = metrics
        self._prices = settings.prices_usd_per_mtok()

    async def Generate(
        self, request: model_service_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[model_service_pb2.GenerateResponse]:
        """Stream token deltas and one Finished; the confidence also goes in the trailer."""
        # Until the stream completes, assume the caller left (the handler is closed then).
        code = "CANCELLED"
        try:
            validated = validate_generate(request, self._settings.limits)
            if validated.request_id:
                structlog.contextvars.bind_contextvars(request_id=validated.request_id)
            async for event in self._service.generate(validated):
                if isinstance(event, PromptAccepted):
                    count = str(event.prompt_tokens)
                    await context.send_initial_metadata(((PROMPT_TOKENS_KEY, count),))
                elif isinstance(event, StreamedDelta):
                    yield model_service_pb2.GenerateResponse(delta=_delta(event))
                else:
                    score = event.confidence.score
                    context.set_trailing_metadata(((CONFIDENCE_TRAILER, f"{score:.6f}"),))
                    code = "OK"
                    _log_outcome(self._settings.tier, event)
                    yield model_service_pb2.GenerateResponse(finished=_finished(event))
        except TierrouteError as exc:
            code = exc.kind.value
            raise
        except asyncio.CancelledError:
            code = _cancel_code(context)
            raise
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            self._metrics.count_request(code)

    async def GetModelInfo(
        self, request: model_service_pb2.GetModelInfoRequest, context: Context
    ) -> model_service_pb2.GetModelInfoResponse:
        """Model name, tier, prices and limits, from the configuration and the engine."""
        info = self._engine.info
        limits = self._settings.limits
        return model_service_pb2.GetModelInfoResponse(
            model_name=info.model_name,
            tier=self._settings.tier,
            input_usd_per_mtok=self._prices[0],
            output_usd_per_mtok=self._prices[1],
            context_length_tokens=info.max_model_len,
            max_output_tokens=min(limits.max_tokens, info.max_model_len - 1),
            max_concurrent_streams=limits.max_concurrent_streams,
            engine=info.engine,
        )


def _cancel_code(context: Context) -> str:
    """DEADLINE_EXCEEDED when the caller's deadline ran out, else CANCELLED."""
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0.01 else "CANCELLED"


def _delta(event: StreamedDelta) -> common_pb2.TokenDelta:
    delta = event.delta
    return common_pb2.TokenDelta(
        text=delta.text,
        token_ids=delta.token_ids,
        logprobs=delta.logprobs,
        running_confidence=event.running_confidence,
    )


def _finished(outcome: Outcome) -> model_service_pb2.Finished:
    stats = outcome.confidence
    return model_service_pb2.Finished(
        finish_reason=_FINISH[outcome.finish_reason],
        usage=common_pb2.Usage(
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens
        ),
        confidence=common_pb2.Confidence(
            score=stats.score,
            mean_logprob=stats.mean_logprob,
            min_logprob=stats.min_logprob,
            min_window_logprob=stats.min_window_logprob,
            low_prob_fraction=stats.low_prob_fraction,
            token_count=stats.token_count,
            method=common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC,
        ),
        ttft_seconds=outcome.ttft_seconds,
        total_seconds=outcome.total_seconds,
    )


def _log_outcome(tier: str, outcome: Outcome) -> None:
    _log.info(
        "generated",
        tier=tier,
        finish_reason=outcome.finish_reason.value,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        confidence=round(outcome.confidence.score, 4),
        ttft_seconds=round(outcome.ttft_seconds, 4),
        total_seconds=round(outcome.total_seconds, 4),
    )
