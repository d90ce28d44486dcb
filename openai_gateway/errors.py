"""OpenAI-style HTTP errors, and the mapping from the router's gRPC statuses to them.

Callers written against the OpenAI API branch on the HTTP status and on the body
``{"error": {"message", "type", "param", "code"}}``; the official client also reads
``Retry-After`` / ``retry-after-ms`` and ``x-should-retry`` to decide on retries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.rpc import error_details_pb2, status_pb2

_log = structlog.get_logger("openai_gateway")
# gRPC's own message when the channel has no connection; a status the router sends never says it.
_NO_CONNECTION = "failed to connect to all addresses"
# Why a connection failed, from the channel's message (first match wins), as callers read it.
_CONNECTION_CAUSES: tuple[tuple[str, str], ...] = (
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the TLS handshake failed: the router's certificate is not signed by a trusted CA",
    ),
    (
        "Hostname Verification",
        "the TLS handshake failed: the router's certificate does not carry the expected name",
    ),
    ("andshake failed", "the TLS handshake failed"),
)
_NO_CONNECTION_CAUSE = "no connection (the router is down, or only one side uses TLS)"

# Fields of the router's contract and the OpenAI parameter a caller knows them by.
_PARAMS: dict[str, str] = {
    "sampling.max_tokens": "max_tokens",
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.stop": "stop",
    "sampling.seed": "seed",
    "options.tier_hint": "model",
    "options.fallback_mode": "tierroute.fallback_mode",
    "options.fallback_threshold": "tierroute.fallback_threshold",
    "options.max_cost_usd": "tierroute.max_cost_usd",
}


@dataclass(frozen=True)
class _Mapping:
    status: int
    type: str
    code: str
    retry: bool | None = None  # x-should-retry; None leaves it to the client's status rules


_BY_CODE: dict[grpc.StatusCode, _Mapping] = {
    grpc.StatusCode.INVALID_ARGUMENT: _Mapping(400, "invalid_request_error", "invalid_argument"),
    grpc.StatusCode.OUT_OF_RANGE: _Mapping(400, "invalid_request_error", "out_of_range"),
    grpc.StatusCode.FAILED_PRECONDITION: _Mapping(
        400, "invalid_request_error", "failed_precondition"
    ),
    grpc.StatusCode.UNAUTHENTICATED: _Mapping(401, "authentication_error", "invalid_api_key"),
    grpc.StatusCode.PERMISSION_DENIED: _Mapping(403, "permission_error", "permission_denied"),
    grpc.StatusCode.NOT_FOUND: _Mapping(404, "invalid_request_error", "not_found"),
    grpc.StatusCode.ABORTED: _Mapping(409, "server_error", "aborted"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: _Mapping(429, "rate_limit_error", "rate_limit_exceeded"),
    grpc.StatusCode.CANCELLED: _Mapping(499, "invalid_request_error", "cancelled", retry=False),
    grpc.StatusCode.UNIMPLEMENTED: _Mapping(501, "server_error", "unimplemented", retry=False),
    grpc.StatusCode.UNAVAILABLE: _Mapping(503, "server_error", "unavailable"),
    # The same request would most likely run out of time again: tell the client not to retry.
    grpc.StatusCode.DEADLINE_EXCEEDED: _Mapping(504, "timeout_error", "timeout", retry=False),
}
_INTERNAL = _Mapping(500, "server_error", "internal_error")


class ApiError(Exception):
    """An error to send as an OpenAI-style JSON body with its HTTP status and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers: Mapping[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {...}}`` as OpenAI sends it."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 for a request field the endpoint itself rejects."""
    return ApiError(400, message, "invalid_request_error", param, code)


def bad_gateway(message: str) -> ApiError:
    """A 502: the router broke its own contract (for example a stream without its end)."""
    return ApiError(502, message, "server_error", None, "bad_gateway")


def retry_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (HTTP) plus the exact ``retry-after-ms``."""
    seconds = max(seconds, 0.0)
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


def _details(metadata: Any) -> tuple[Any, ...]:
    found: list[Any] = []
    for key, value in metadata or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for packed in status_pb2.Status.FromString(value).details:
            for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
                if packed.Is(kind.DESCRIPTOR):
                    detail = kind()
                    packed.Unpack(detail)
                    found.append(detail)
    return tuple(found)


def from_status(
    code: grpc.StatusCode,
    message: str,
    details: tuple[Any, ...] = (),
    prompt_param: str = "messages",
) -> ApiError:
    """The HTTP error for a gRPC status and its ``google.rpc`` details.

    ``prompt_param`` names the request field that carried the prompt (``messages`` for chat,
    ``prompt`` for completions), for errors the router reports on ``prompt.*``.
    """
    mapping = _BY_CODE.get(code, _INTERNAL)
    if mapping is _INTERNAL:
        # Never leak internal messages to callers; the router logged the cause.
        message = "internal error"
    param: str | None = None
    headers: dict[str, str] = {}
    for detail in details:
        if isinstance(detail, error_details_pb2.BadRequest) and detail.field_violations:
            field_name = detail.field_violations[0].field
            if field_name == "prompt" or field_name.startswith("prompt."):
                param = prompt_param
            else:
                param = _PARAMS.get(field_name, field_name)
        elif isinstance(detail, error_details_pb2.RetryInfo):
            delay = detail.retry_delay
            headers.update(retry_headers(delay.seconds + delay.nanos / 1e9))
    if mapping.retry is not None:
        headers["x-should-retry"] = str(mapping.retry).lower()
    return ApiError(mapping.status, message, mapping.type, param, mapping.code, headers)


def unreachable(code: grpc.StatusCode, message: str) -> ApiError | None:
    """A 503 naming why the channel to the router has no connection; ``None`` for other errors.

    The caller learns the cause (TLS or not) without the router's address; the log gets the
    channel's own message and what to check.
    """
    if code != grpc.StatusCode.UNAVAILABLE or _NO_CONNECTION not in message:
        return None
    cause = next((c for marker, c in _CONNECTION_CAUSES if marker in message), _NO_CONNECTION_CAUSE)
    _log.warning(
        "router unreachable",
        cause=cause,
        grpc_message=message,
        check="router.target and router.tls (ca_file, server_name, cert_file) against the "
        "router's server.tls",
    )
    return ApiError(
        503,
        f"the endpoint cannot reach the router: {cause}",
        "server_error",
        None,
        "router_unreachable",
    )


def from_rpc_error(exc: grpc.aio.AioRpcError, prompt_param: str = "messages") -> ApiError:
    """The HTTP error for a failed call to the router."""
    if (error := unreachable(exc.code(), exc.details() or "")) is not None:
        return error
    return from_status(
        exc.code(), exc.details() or "", _details(exc.trailing_metadata()), prompt_param
    )
