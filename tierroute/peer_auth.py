"""Who may call a service, checked per call: a rotating shared secret, a pinned peer identity.

- :class:`SecretFile`: the shared secret of a mounted file, re-read when the file changes
  (``stat``: modification time, size, inode; cheap enough for every call). A caller sends
  :meth:`SecretFile.secret`; a service checks against :meth:`SecretFile.digests`. After a change the
  previous secret stays accepted for ``grace_seconds``, because the caller's copy of the
  Secret is refreshed by its own kubelet, not at the same moment. A file that cannot be read
  (mid-rotation) keeps the current secret. :class:`tierroute.transport.SharedSecretInterceptor`
  checks calls against it.
- :class:`PeerSanInterceptor`: under mutual TLS the handshake accepts any certificate of the
  client CA; this pins the caller's identity, its DNS or URI subject alternative names (the
  router's ``router.<namespace>.svc`` or SPIFFE URI). A call from a certificate without an
  allowed name ends PERMISSION_DENIED naming what was presented; a call with no client
  certificate at all (a plaintext or server-only TLS port) ends UNAUTHENTICATED.

Services in ``open_services`` (health checking, reflection) are not checked.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import grpc
import structlog

from tierroute.config import MIN_SECRET_CHARS
from tierroute.errors import PermissionDeniedError, TierrouteError, UnauthenticatedError
from tierroute.status import to_grpc_status

_log = structlog.get_logger("tierroute.peer_auth")
PEER_SAN_KEYS = ("peer_dns", "peer_uri")
"""gRPC auth-context properties holding the client certificate's DNS and URI SANs."""
_SHOWN_NAMES = 4

__all__ = ["PEER_SAN_KEYS", "PeerSanInterceptor", "SecretFile", "digest", "service_of"]


def digest(value: str) -> bytes:
    """SHA-256 of ``value``: comparing fixed-length digests keeps the time length-independent."""
    return hashlib.sha256(value.encode()).digest()


def service_of(method: str) -> str:
    """``pkg.Service`` of a ``/pkg.Service/Method`` method name."""
    return method.lstrip("/").rsplit("/", 1)[0]


def _read_secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_SECRET_CHARS:
        # The length is safe to say; the value never is.
        raise ValueError(f"shared secret: at least {MIN_SECRET_CHARS} characters required")
    return value


class SecretFile:
    """A shared secret file, re-read when it changes; the old secret accepted for a grace."""

    def __init__(
        self,
        path: Path,
        grace_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._grace = grace_seconds
        self._clock = clock
        # Calls on the event loop and tests on threads: one reader at a time.
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._secret = _read_secret(path)  # unreadable at start: the service stops
        self._current = digest(self._secret)
        self._previous: bytes | None = None
        self._previous_until = 0.0
        self.reloads = 0

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self._path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def digests(self) -> tuple[bytes, ...]:
        """Digests of the secrets accepted now: the file's current one, maybe the previous."""
        with self._lock:
            self._refresh()
            if self._previous is not None and self._clock() < self._previous_until:
                return (self._current, self._previous)
            self._previous = None
            return (self._current,)

    def secret(self) -> str:
        """The file's current secret (what a caller sends; re-read when the file changed)."""
        with self._lock:
            self._refresh()
            return self._secret

    def _refresh(self) -> None:
        try:
            stamp = self._stat()
        except OSError as exc:  # mid-swap: the next call looks again
            _log.warning("shared secret file missing; keeping the current secret", error=str(exc))
            return
        if stamp == self._stamp:
            return
        # Whatever the outcome, this version of the file is dealt with: a bad one is reported
        # once, not on every call, and the writer's next change gives a new stamp.
        self._stamp = stamp
        try:
            value = _read_secret(self._path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            _log.warning(
                "shared secret file unreadable; keeping the current secret", error=str(exc)
            )
            return
        fresh = digest(value)
        if fresh == self._current:
            return
        self._secret = value
        self._previous, self._current = self._current, fresh
        self._previous_until = self._clock() + self._grace
        self.reloads += 1
        _log.info("shared secret reloaded", previous_accepted_seconds=self._grace)


Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _peer_names(context: grpc.aio.ServicerContext[Any, Any]) -> list[str]:
    auth = context.auth_context() or {}
    names: list[str] = []
    for key in PEER_SAN_KEYS:
        names.extend(v.decode("utf-8", "replace") for v in auth.get(key, ()))
    return names


def _has_client_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    auth = context.auth_context() or {}
    return bool(auth.get("x509_pem_cert") or auth.get("x509_subject"))


class PeerSanInterceptor(grpc.aio.ServerInterceptor):
    """Lets through only callers whose client certificate names an allowed DNS or URI SAN."""

    def __init__(self, allowed: Sequence[str], open_services: Collection[str]) -> None:
        if not allowed:
            raise ValueError("PeerSanInterceptor needs at least one allowed name")
        self._allowed = frozenset(allowed)
        self._open = frozenset(open_services)

    def refusal(self, context: grpc.aio.ServicerContext[Any, Any]) -> TierrouteError | None:
        """The error refusing this call's peer, or ``None`` when it may call."""
        names = _peer_names(context)
        if any(name in self._allowed for name in names):
            return None
        if not _has_client_certificate(context):
            return UnauthenticatedError(
                "no client certificate: this service accepts only the router over mutual TLS"
            )
        shown = ", ".join(names[:_SHOWN_NAMES]) or "none"
        return PermissionDeniedError(
            f"client certificate not allowed: its DNS/URI names ({shown}) are not in "
            "auth.allowed_peer_sans"
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or service_of(method) in self._open:
            return handler
        # The auth context exists only inside the call: wrap the behaviour to check first.
        for kind in _KINDS:
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                return handler._replace(**{kind: self._guard(behaviour, method)})
        return None  # an unknown handler shape: fail closed (UNIMPLEMENTED)

    def _guard(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
            error = self.refusal(context)
            if error is None:
                return False
            _log.warning(
                "caller refused by its certificate",
                method=method,
                peer=context.peer(),
                names=_peer_names(context)[:_SHOWN_NAMES],
            )
            await context.abort_with_status(to_grpc_status(error))
            return True

        if inspect.isasyncgenfunction(behaviour):

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                if await refuse(context):
                    return
                async for item in behaviour(request, context):
                    yield item

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if await refuse(context):
                return None
            return await behaviour(request, context)

        return call
