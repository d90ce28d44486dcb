"""Status mapping and response rendering, from protos built by hand."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from openai_gateway.errors import ApiError, from_status, retry_headers, unreachable
from openai_gateway.responses import Kind, StreamState, body, chunk, headers, usage
from tierroute.v1 import common_pb2, router_service_pb2

R = router_service_pb2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
    ],
)
def test_status_codes(code: grpc.StatusCode, status: int) -> None:
    assert from_status(code, "m").status == status


def test_internal_messages_are_not_leaked() -> None:
    assert from_status(grpc.StatusCode.INTERNAL, "stack trace here").message == "internal error"


def test_details_become_param_and_retry_headers() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[{"field": "prompt.chat.messages[0].content", "description": "empty"}]
    )
    assert from_status(grpc.StatusCode.INVALID_ARGUMENT, "x", (bad,), "prompt").param == "prompt"
    hint = error_details_pb2.BadRequest(field_violations=[{"field": "options.tier_hint"}])
    assert from_status(grpc.StatusCode.INVALID_ARGUMENT, "x", (hint,)).param == "model"
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=1, nanos=200_000_000)
    )
    error = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", (retry,))
    assert error.headers == {"retry-after": "2", "retry-after-ms": "1200"}
    assert retry_headers(0) == {"retry-after": "0", "retry-after-ms": "0"}


def _state(reason: int = common_pb2.FINISH_REASON_STOP) -> StreamState:
    state = StreamState()
    decision = R.Decision(tier="small", reason="rule:greeting")
    state.feed(R.RouterServiceGenerateResponse(routed=R.Routed(decision=decision, request_id="r")))
    state.feed(R.RouterServiceGenerateResponse(delta=common_pb2.TokenDelta(text="no")))
    state.feed(
        R.RouterServiceGenerateResponse(
            escalated=R.Escalated(
                from_tier="small", to_tier="large", cause=R.ESCALATION_CAUSE_TIER_ERROR
            )
        )
    )
    state.feed(R.RouterServiceGenerateResponse(delta=common_pb2.TokenDelta(text="yes")))
    finished = R.RouterFinished(
        served_tier="large",
        finish_reason=reason,
        escalated=True,
        cost_usd=0.5,
        savings_usd=-0.25,
        tier_usage=[
            R.TierUsage(
                tier="small",
                usage=common_pb2.Usage(prompt_tokens=4, completion_tokens=9),
                discarded=True,
            ),
            R.TierUsage(tier="large", usage=common_pb2.Usage(prompt_tokens=5, completion_tokens=1)),
        ],
    )
    state.feed(R.RouterServiceGenerateResponse(finished=finished))
    return state


def test_escalation_drops_the_abandoned_text_and_usage_counts_the_served_tier() -> None:
    state = _state()
    assert state.text == "yes"
    assert usage(state.finished) == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    rendered = body(Kind.CHAT, state, 1)
    assert rendered["choices"][0]["message"]["content"] == "yes"
    assert rendered["tierroute"]["escalations"][0]["cause"] == "tier_error"
    assert rendered["tierroute"]["classifier_score"] is None
    assert headers(state)["x-tierroute-savings-usd"] == "-0.25"
    assert body(Kind.COMPLETION, state, 1)["choices"][0]["text"] == "yes"


def test_aborted_generation_is_a_retryable_503() -> None:
    with pytest.raises(ApiError) as caught:
        body(Kind.CHAT, _state(common_pb2.FINISH_REASON_ABORTED), 1)
    assert caught.value.status == 503 and caught.value.headers["x-should-retry"] == "true"


def test_chunks() -> None:
    state = _state()
    opening = chunk(Kind.CHAT, state, 1, role=True)
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunk(Kind.CHAT, state, 1, finish="stop")["choices"][0]["delta"] == {}
    assert chunk(Kind.COMPLETION, state, 1, text="t")["choices"][0]["text"] == "t"
    final = chunk(Kind.CHAT, state, 1, with_usage=True)
    assert final["choices"] == [] and final["usage"]["total_tokens"] == 6


# What grpcio's channel reports when it cannot connect (measured with grpcio 1.85).
_CHANNEL = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.7:50051: "


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        (
            _CHANNEL + "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d"
            ":SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer",
            "not signed by a trusted CA",
        ),
        (
            _CHANNEL + "Custom verification check failed with error: UNAUTHENTICATED: Hostname "
            "Verification Check failed.",
            "does not carry the expected name",
        ),
        (_CHANNEL + "Ssl handshake failed: SSL_ERROR_SSL", "the TLS handshake failed"),
        (
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:10.0.0.7:50051: "
            "Socket closed",
            "only one side uses TLS",
        ),
    ],
)
def test_a_channel_without_connection_is_a_503_naming_the_cause(message: str, cause: str) -> None:
    error = unreachable(grpc.StatusCode.UNAVAILABLE, message)
    assert error is not None
    assert (error.status, error.code) == (503, "router_unreachable")
    assert error.message.startswith("the endpoint cannot reach the router: ")
    assert cause in error.message
    assert "10.0.0.7" not in error.message


def test_the_routers_own_unavailable_keeps_its_message() -> None:
    # The router's status (no tier can serve) is not a connection failure.
    assert unreachable(grpc.StatusCode.UNAVAILABLE, "no tier can serve") is None
    assert unreachable(grpc.StatusCode.INTERNAL, "failed to connect to all addresses") is None
    assert from_status(grpc.StatusCode.UNAVAILABLE, "no tier can serve").code == "unavailable"
