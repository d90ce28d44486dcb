"""Router stream events to OpenAI response bodies, stream chunks and routing-fact headers.

:class:`StreamState` follows one ``RouterService.Generate`` stream; the functions below render
what it has seen as a ``chat.completion`` / ``text_completion`` body or as stream chunks. The
routing facts go into response headers (``x-tierroute-*``) and the extra body field
``tierroute``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from openai_gateway.errors import ApiError, bad_gateway
from tierroute.v1 import common_pb2, router_service_pb2

R = router_service_pb2

_FINISH_REASONS = {
    common_pb2.FINISH_REASON_STOP: "stop",
    common_pb2.FINISH_REASON_LENGTH: "length",
}


class Kind(enum.Enum):
    """Which OpenAI API a response belongs to."""

    CHAT = "chat.completion"
    COMPLETION = "text_completion"


@dataclass
class StreamState:
    """What one router stream has said so far."""

    request_id: str = ""
    routed: Any = None  # tierroute.v1.Decision of the Routed event
    tier: str = ""
    parts: list[str] = field(default_factory=list)
    escalations: list[Any] = field(default_factory=list)  # tierroute.v1.Escalated
    finished: Any = None  # tierroute.v1.RouterFinished

    def feed(self, message: R.RouterServiceGenerateResponse) -> str:
        """Record one event; returns its kind (``routed``, ``delta``, ``escalated``, ...)."""
        kind = message.WhichOneof("event")
        if kind == "routed":
            self.routed = message.routed.decision
            self.request_id = message.routed.request_id
            self.tier = self.routed.tier
        elif kind == "delta":
            self.parts.append(message.delta.text)
        elif kind == "escalated":
            self.escalations.append(message.escalated)
            self.tier = message.escalated.to_tier
            # The abandoned tier's text is never part of the answer, whatever was streamed.
            self.parts.clear()
        elif kind == "finished":
            self.finished = message.finished
            self.tier = message.finished.served_tier
        else:
            raise bad_gateway("unexpected event from the router")
        return str(kind)

    @property
    def text(self) -> str:
        """The answer of the tier serving now."""
        return "".join(self.parts)


def finish_reason(finished: R.RouterFinished) -> str:
    """OpenAI's ``finish_reason``; an aborted generation is an error, not an answer."""
    reason = _FINISH_REASONS.get(finished.finish_reason)
    if reason is None:
        raise ApiError(
            503,
            "the generation was aborted by the server; retry",
            "server_error",
            None,
            "aborted",
            {"x-should-retry": "true"},
        )
    return reason


def usage(finished: R.RouterFinished) -> dict[str, int]:
    """Token counts of the served answer (tokens spent on discarded answers are in the facts)."""
    served = [u for u in finished.tier_usage if u.tier == finished.served_tier and not u.discarded]
    counts = served[-1].usage if served else common_pb2.Usage()
    return {
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.completion_tokens,
        "total_tokens": counts.prompt_tokens + counts.completion_tokens,
    }


def escalation(event: R.Escalated) -> dict[str, Any]:
    """One escalation as JSON."""
    return {
        "from_tier": event.from_tier,
        "to_tier": event.to_tier,
        "cause": R.EscalationCause.Name(event.cause).removeprefix("ESCALATION_CAUSE_").lower(),
        "confidence": event.confidence_score,
        "reason": event.reason,
        "discarded_tokens": event.discarded_tokens,
    }


def facts(state: StreamState) -> dict[str, Any]:
    """The routing facts of a finished stream (the ``tierroute`` body field)."""
    f = state.finished
    decision = state.routed
    return {
        "request_id": state.request_id,
        "tier": f.served_tier,
        "routed_tier": decision.tier if decision is not None else "",
        "reason": decision.reason if decision is not None else "",
        "classifier_score": (
            decision.classifier_score
            if decision is not None and decision.HasField("classifier_score")
            else None
        ),
        "escalated": f.escalated,
        "escalations": [escalation(e) for e in state.escalations],
        "degraded": f.degraded,
        "degraded_reason": f.degraded_reason,
        "confidence": f.confidence.score,
        "cost_usd": f.cost_usd,
        "baseline_cost_usd": f.baseline_cost_usd,
        "savings_usd": f.savings_usd,
        "tier_usage": [
            {
                "tier": u.tier,
                "prompt_tokens": u.usage.prompt_tokens,
                "completion_tokens": u.usage.completion_tokens,
                "cost_usd": u.cost_usd,
                "discarded": u.discarded,
            }
            for u in f.tier_usage
        ],
        "ttft_ms": f.ttft_ms,
        "total_ms": f.total_ms,
    }


def _usd(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def headers(state: StreamState) -> dict[str, str]:
    """Routing-fact headers; cost and savings only once the stream has finished."""
    escalated = bool(state.escalations) or (state.finished is not None and state.finished.escalated)
    out = {
        "x-request-id": state.request_id,
        "x-tierroute-tier": state.tier,
        "x-tierroute-escalated": str(escalated).lower(),
    }
    if state.finished is not None:
        out["x-tierroute-cost-usd"] = _usd(state.finished.cost_usd)
        out["x-tierroute-savings-usd"] = _usd(state.finished.savings_usd)
    return out


def response_id(kind: Kind, request_id: str) -> str:
    """``chatcmpl-<request id>`` / ``cmpl-<request id>``: the router's id, for correlation."""
    return f"{'chatcmpl' if kind is Kind.CHAT else 'cmpl'}-{request_id}"


def body(kind: Kind, state: StreamState, created: int) -> dict[str, Any]:
    """The whole non-streaming response of a finished stream."""
    reason = finish_reason(state.finished)
    choice: dict[str, Any] = {"index": 0, "finish_reason": reason, "logprobs": None}
    if kind is Kind.CHAT:
        choice["message"] = {"role": "assistant", "content": state.text, "refusal": None}
    else:
        choice["text"] = state.text
    return {
        "id": response_id(kind, state.request_id),
        "object": kind.value,
        "created": created,
        "model": state.tier,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(state.finished),
        "tierroute": facts(state),
    }


def chunk(
    kind: Kind,
    state: StreamState,
    created: int,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    extra: dict[str, Any] | None = None,
    with_usage: bool = False,
) -> dict[str, Any]:
    """One stream chunk: some text, the opening role, the finish, or the usage-only chunk."""
    out: dict[str, Any] = {
        "id": response_id(kind, state.request_id),
        "object": "chat.completion.chunk" if kind is Kind.CHAT else "text_completion",
        "created": created,
        "model": state.tier,
        "system_fingerprint": None,
    }
    if with_usage:
        out["choices"] = []
        out["usage"] = usage(state.finished)
        return out
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
    if kind is Kind.CHAT:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None or role:
            delta["content"] = text or ""
        choice["delta"] = delta
    else:
        choice["text"] = text or ""
    out["choices"] = [choice]
    if extra is not None:
        out["tierroute"] = extra
    return out
