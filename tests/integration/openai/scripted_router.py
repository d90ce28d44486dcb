"""A scripted RouterService on the real bootstrap, and the endpoint served by uvicorn in-process.

The script is chosen by the prompt's last text: ``escalate`` escalates small -> large (text
forwarded first only in STREAMING mode, as the router does), ``error:<CODE>`` fails before the
first event, ``fail-mid`` fails after the first text, ``slow`` outlasts short deadlines. Keys:
``Bearer bad`` is unauthenticated, ``Bearer limited`` may not pin a tier.

``SubmitFeedback`` knows the ids of the requests it served (and ``rid-1``), answers NOT_FOUND
for any other and PERMISSION_DENIED to a key other than the one that made the request;
``GetQuality`` answers :data:`QUALITY`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvicorn
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry

from openai_gateway import OpenAISettings, create_app
from tierroute.config import ServerSettings
from tierroute.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    OverloadedError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

R = router_service_pb2
ERRORS = {
    "INVALID_ARGUMENT": lambda: InvalidArgumentError("sampling.temperature", "too hot"),
    "RESOURCE_EXHAUSTED": lambda: OverloadedError("too many streams", retry_after_seconds=2.5),
    "UNAVAILABLE": lambda: UnavailableError("no tier can serve"),
    "DEADLINE_EXCEEDED": lambda: DeadlineExceededError("out of time"),
    "PERMISSION_DENIED": lambda: PermissionDeniedError("key may not do this"),
}


# 2026-01-01T00:00:00Z and one hour later.
_T0 = Timestamp(seconds=1767225600)
_T1 = Timestamp(seconds=1767229200)
QUALITY = R.GetQualityResponse(
    enabled=True,
    target=0.95,
    confidence_level=0.95,
    overall=R.QualityEstimate(
        name="all",
        estimate=0.972,
        lower_bound=0.951,
        upper_bound=0.988,
        samples=412,
        effective_samples=380.5,
    ),
    tiers=[
        R.QualityEstimate(
            name="small",
            estimate=0.955,
            lower_bound=0.921,
            upper_bound=0.978,
            samples=300,
            effective_samples=280.0,
        ),
        R.QualityEstimate(
            name="large",
            estimate=1.0,
            lower_bound=0.967,
            upper_bound=1.0,
            samples=112,
            effective_samples=100.5,
        ),
    ],
    routes=[R.QualityEstimate(name="code", samples=0, upper_bound=1.0)],
    thresholds=[
        R.EscalationThreshold(
            tier="small", value=0.612, samples=300, pinned=False, last_change_time=_T0
        )
    ],
    savings_ratio=0.48,
    cost_usd=1.25,
    baseline_cost_usd=2.5,
    shadow_cost_usd=0.03,
    judge_cost_usd=0.02,
    judges=[
        R.JudgeSamples(judge="agreement", samples=380, acceptable=361),
        R.JudgeSamples(judge="feedback", samples=32, acceptable=30, cost_usd=0.0),
    ],
    computed_time=_T1,
)


def _text_of(prompt: common_pb2.Prompt) -> str:
    if prompt.WhichOneof("kind") == "chat":
        return prompt.chat.messages[-1].content
    return prompt.text


def _routed(tier: str, request_id: str) -> R.RouterServiceGenerateResponse:
    decision = R.Decision(tier=tier, reason="classifier", classifier_score=0.75, threshold=0.5)
    return R.RouterServiceGenerateResponse(
        routed=R.Routed(decision=decision, request_id=request_id)
    )


def _delta(text: str) -> R.RouterServiceGenerateResponse:
    return R.RouterServiceGenerateResponse(delta=common_pb2.TokenDelta(text=text, token_ids=[1]))


def _finished(served: str, escalated: bool, reason: int) -> R.RouterServiceGenerateResponse:
    usage = [R.TierUsage(tier=served, usage=common_pb2.Usage(prompt_tokens=7, completion_tokens=2))]
    if escalated:
        small = common_pb2.Usage(prompt_tokens=7, completion_tokens=3)
        usage.insert(0, R.TierUsage(tier="small", usage=small, cost_usd=0.000001, discarded=True))
    return R.RouterServiceGenerateResponse(
        finished=R.RouterFinished(
            served_tier=served,
            finish_reason=reason,
            tier_usage=usage,
            cost_usd=0.0000125,
            baseline_cost_usd=0.00005,
            savings_usd=0.0000375,
            confidence=common_pb2.Confidence(score=0.9),
            escalated=escalated,
            ttft_ms=3.0,
            total_ms=5.0,
        )
    )


class ScriptedRouter(router_service_pb2_grpc.RouterServiceServicer):
    """Plays a script chosen by the prompt; records what it was sent."""

    def __init__(self, require_key: bool = False) -> None:
        self.require_key = require_key
        """Refuse calls without an ``authorization`` key (a router with API keys on)."""
        self.requests: list[R.RouterServiceGenerateRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.cancelled = 0
        self.list_calls = 0
        # request id -> the authorization it was served under; feedback stored by request id.
        self.served: dict[str, str] = {"rid-1": "Bearer good"}
        self.feedback: dict[str, R.SubmitFeedbackRequest] = {}
        self.feedback_metadata: list[dict[str, str]] = []

    def _check_key(self, context: Any, hint: str) -> dict[str, str]:
        metadata = {k: v for k, v in context.invocation_metadata()}
        if metadata.get("authorization") == "Bearer bad":
            raise UnauthenticatedError("unknown API key")
        if self.require_key and "authorization" not in metadata:
            raise UnauthenticatedError("missing API key")
        if hint and metadata.get("authorization") == "Bearer limited":
            raise PermissionDeniedError("this key may not pin a tier")
        return metadata

    async def ListTiers(self, request: R.ListTiersRequest, context: Any) -> R.ListTiersResponse:
        self.list_calls += 1
        self._check_key(context, "")
        return R.ListTiersResponse(
            tiers=[
                R.TierInfo(
                    name="small",
                    input_usd_per_mtok=0.1,
                    output_usd_per_mtok=0.2,
                    endpoints=1,
                    healthy_endpoints=1,
                ),
                R.TierInfo(
                    name="large",
                    input_usd_per_mtok=1.0,
                    output_usd_per_mtok=2.0,
                    endpoints=1,
                    healthy_endpoints=1,
                ),
            ]
        )

    async def SubmitFeedback(
        self, request: R.SubmitFeedbackRequest, context: Any
    ) -> R.SubmitFeedbackResponse:
        metadata = self._check_key(context, "")
        self.feedback_metadata.append(metadata)
        if not request.HasField("score"):
            raise InvalidArgumentError("score", "required")
        if request.request_id.startswith("error:"):
            raise ERRORS[request.request_id.removeprefix("error:")]()
        owner = self.served.get(request.request_id)
        if owner is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no record of this request")
        if metadata.get("authorization") != owner:
            raise PermissionDeniedError("feedback must come with the key that made the request")
        replaced = request.request_id in self.feedback
        self.feedback[request.request_id] = request
        return R.SubmitFeedbackResponse(
            request_id=request.request_id,
            judge="feedback",
            score=request.score,
            acceptable=request.score >= 0.5,
            acceptance_threshold=0.5,
            served_tier="small",
            replaced=replaced,
            recorded_time=_T1,
        )

    async def GetQuality(self, request: R.GetQualityRequest, context: Any) -> R.GetQualityResponse:
        self._check_key(context, "")
        return QUALITY

    async def Generate(
        self, request: R.RouterServiceGenerateRequest, context: Any
    ) -> AsyncIterator[R.RouterServiceGenerateResponse]:
        self.requests.append(request)
        self.metadata.append(self._check_key(context, request.options.tier_hint))
        text = _text_of(request.prompt)
        if text.startswith("error:"):
            raise ERRORS[text.removeprefix("error:")]()
        request_id = request.request_id or "rid-1"
        self.served[request_id] = self.metadata[-1].get("authorization", "")
        tier = request.options.tier_hint or "small"
        yield _routed(tier, request_id)
        try:
            if text == "slow":
                await asyncio.sleep(30)
            if text == "escalate":
                if request.options.fallback_mode == R.FALLBACK_MODE_STREAMING:
                    yield _delta("wrong ")
                    yield _delta("answer")
                yield R.RouterServiceGenerateResponse(
                    escalated=R.Escalated(
                        from_tier="small",
                        to_tier="large",
                        confidence_score=0.2,
                        cause=R.ESCALATION_CAUSE_LOW_CONFIDENCE,
                        reason="low confidence",
                        discarded_tokens=2,
                    )
                )
                yield _delta("right ")
                yield _delta("answer")
                yield _finished("large", True, common_pb2.FINISH_REASON_STOP)
                return
            yield _delta("Hello")
            if text == "fail-mid":
                raise UnavailableError("tier died mid-answer")
            yield _delta("")  # an incomplete multi-byte character: nothing to forward
            yield _delta(" there")
            reason = (
                common_pb2.FINISH_REASON_LENGTH if text == "long" else common_pb2.FINISH_REASON_STOP
            )
            yield _finished(tier, False, reason)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def start_router(servicer: ScriptedRouter) -> ServerBootstrap:
    """The scripted router on the real bootstrap, on a free loopback port."""
    binding = ServiceBinding(
        "tierroute.v1.RouterService",
        lambda s: router_service_pb2_grpc.add_RouterServiceServicer_to_server(servicer, s),
    )
    bootstrap = ServerBootstrap(
        ServerSettings(metrics_port=None, grace_seconds=1), [binding], CollectorRegistry()
    )
    await bootstrap.start()
    await bootstrap.set_serving(True)
    return bootstrap


class Endpoint:
    """The OpenAI endpoint under uvicorn in this event loop, on a free loopback port."""

    def __init__(self, settings: OpenAISettings) -> None:
        self.registry = CollectorRegistry()
        # IPPROTO_TCP so asyncio sets TCP_NODELAY (see openai_gateway.__main__).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(settings, self.registry), log_config=None, access_log=False, loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        # Inside pytest, Ctrl-C must stay pytest's: no signal capture by this server.
        self._server.capture_signals = contextlib.nullcontext
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """Base URL the ``openai`` client takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        """Serve in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Shut down gracefully."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
