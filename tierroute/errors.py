"""The one exception hierarchy of tierroute's domain code.

Domain modules raise these without importing gRPC; :mod:`tierroute.status` maps each
:class:`ErrorKind` to a gRPC status code with ``google.rpc`` details.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, in the vocabulary of gRPC status codes."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    INTERNAL = "INTERNAL"


class TierrouteError(Exception):
    """Base of every tierroute error; ``retryable`` says whether the same call may succeed later."""

    kind: ErrorKind = ErrorKind.INTERNAL
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(TierrouteError):
    """The request is malformed; ``field`` names the offending field (dotted path)."""

    kind = ErrorKind.INVALID_ARGUMENT

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class OverloadedError(TierrouteError):
    """Too much work in flight; retry after ``retry_after_seconds``."""

    kind = ErrorKind.RESOURCE_EXHAUSTED
    retryable = True

    def __init__(self, message: str, retry_after_seconds: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UnavailableError(TierrouteError):
    """Nothing can serve the request right now (engine down, no healthy tier)."""

    kind = ErrorKind.UNAVAILABLE
    retryable = True


class DeadlineExceededError(TierrouteError):
    """The caller's deadline passed before the work finished."""

    kind = ErrorKind.DEADLINE_EXCEEDED


class CancelledError(TierrouteError):
    """The caller went away."""

    kind = ErrorKind.CANCELLED


class UnauthenticatedError(TierrouteError):
    """Missing or unknown credentials."""

    kind = ErrorKind.UNAUTHENTICATED


class PermissionDeniedError(TierrouteError):
    """The caller is known but may not do this."""

    kind = ErrorKind.PERMISSION_DENIED


class NotFoundError(TierrouteError):
    """What the call names does not exist here (for example an unknown or evicted request id)."""

    kind = ErrorKind.NOT_FOUND


class FailedPreconditionError(TierrouteError):
    """The system is not in a state to run the request (for example a spend budget exhausted)."""

    kind = ErrorKind.FAILED_PRECONDITION
