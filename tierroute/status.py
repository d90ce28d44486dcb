"""gRPC side of the error hierarchy: statuses with ``google.rpc`` details, and the interceptor.

One server interceptor maps :class:`~tierroute.errors.TierrouteError` raised by any handler to
its status code (with ``BadRequest`` or ``RetryInfo`` details) and anything unexpected to
INTERNAL with a generic message; it also binds ``request_id`` and ``rpc`` to the log context.
"""

from __future__ import annotations

import inspect
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tierroute.errors import (
    ErrorKind,
    InvalidArgumentError,
    OverloadedError,
    TierrouteError,
)

REQUEST_ID_KEY = "x-request-id"
_DOMAIN = "tierroute"
_log = structlog.get_logger("tierroute.status")

_CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorKind.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    ErrorKind.CANCELLED: code_pb2.CANCELLED,
    ErrorKind.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.INTERNAL: code_pb2.INTERNAL,
}


def to_rpc_status(error: TierrouteError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for a domain error, with typed details where they help."""
    status = status_pb2.Status(code=_CODES[error.kind], message=error.message)
    if isinstance(error, InvalidArgumentError):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.field, description=error.description
                )
            ]
        )
        status.details.add().Pack(detail)
    if isinstance(error, OverloadedError):
        seconds = max(error.retry_after_seconds, 0.0)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=type(error).__name__,
            domain=_DOMAIN,
            metadata={"retryable": str(error.retryable).lower()},
        )
    )
    return status


def to_grpc_status(error: TierrouteError) -> grpc.Status:
    """The status object ``context.abort_with_status`` takes."""
    status: grpc.Status = rpc_status.to_status(to_rpc_status(error))
    return status


def request_id_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's request id from metadata, or a fresh one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


class _Undecodable:
    """Stands in for a request whose bytes did not parse, so the handler can answer
    INVALID_ARGUMENT (grpc itself would answer UNKNOWN with the parser's exception text)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def wrapped(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # protobuf's DecodeError: corrupt wire format, bad UTF-8
            return _Undecodable(str(exc))

    return wrapped


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgumentError("request", f"not a valid message: {request.reason}")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    if isinstance(exc, TierrouteError):
        await context.abort_with_status(to_grpc_status(exc))
    _log.exception("unhandled error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _wrap_unary(
    behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], rpc: str
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        structlog.contextvars.bind_contextvars(rpc=rpc, request_id=request_id_of(context))
        try:
            _check_decoded(request)
            return await behaviour(request, context)
        except (TierrouteError, Exception) as exc:
            if _is_abort(exc):
                raise
            await _abort(context, exc)
        finally:
            structlog.contextvars.clear_contextvars()

    return wrapped


def _wrap_stream(
    behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]], rpc: str
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        structlog.contextvars.bind_contextvars(rpc=rpc, request_id=request_id_of(context))
        try:
            _check_decoded(request)
            async for item in behaviour(request, context):
                yield item
        except (TierrouteError, Exception) as exc:
            if _is_abort(exc):
                raise
            await _abort(context, exc)
        finally:
            structlog.contextvars.clear_contextvars()

    return wrapped


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises an internal exception that must pass through untouched.
    return type(exc).__name__ == "AbortError" or isinstance(exc, grpc.aio.AbortError)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors of every unary and server-streaming handler to gRPC statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        # grpc's handler tuple is loosely typed across sync/aio; Any keeps the adapter honest.
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        rpc = str(handler_call_details.method).rsplit("/", 1)[-1]
        if handler.request_deserializer is not None:
            handler = handler._replace(request_deserializer=_lenient(handler.request_deserializer))
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, rpc))
        if handler.unary_stream is not None:
            # Async-generator handlers yield; others (health's Watch) write via the context.
            if inspect.isasyncgenfunction(handler.unary_stream):
                return handler._replace(unary_stream=_wrap_stream(handler.unary_stream, rpc))
            return handler._replace(unary_stream=_wrap_unary(handler.unary_stream, rpc))
        return handler
