"""Transport security shared by both services and the client: TLS, mutual TLS, a shared secret.

The settings live in :mod:`tierroute.config` (validated at load); this module turns them into
gRPC objects:

- :class:`ServerTls` (``server.tls``): the certificate and key a service presents, optionally
  a client CA that callers' certificates must be signed by (mutual TLS).
- :class:`ClientTls`: what a client trusts (a CA file, else the system roots) and the
  certificate it presents for mutual TLS; ``server_name`` overrides the name checked against
  the server's certificate (a ``dns:///`` target whose certificate names another host).
- :class:`SharedSecret`: a secret from a mounted file or the ``TIERROUTE_*`` environment,
  sent as ``authorization: Bearer <secret>`` and checked by :class:`SharedSecretInterceptor`
  in constant time. The secret is a ``SecretStr``: it never shows up in a repr or a log line.
  Given a :class:`tierroute.peer_auth.SecretFile`, the interceptor follows the file as it is
  rotated.

Files are checked when the settings load (present, readable, PEM), so a bad path or a key
where a certificate belongs fails at start-up with the setting's name, not on the first call;
they are read again here, when the server or channel is built. A server's certificate files
are also re-read when they change (:mod:`tierroute.cert_reload`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
import structlog

from tierroute.config import ClientTls, ServerTls, SharedSecret, read_pem
from tierroute.errors import UnauthenticatedError
from tierroute.peer_auth import SecretFile, digest, service_of
from tierroute.status import to_grpc_status

AUTHORIZATION_KEY = "authorization"
BEARER = "Bearer "
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
_log = structlog.get_logger("tierroute.transport")

__all__ = [
    "ClientTls",
    "ServerTls",
    "SharedSecret",
    "SharedSecretInterceptor",
    "bearer_metadata",
    "channel_credentials",
    "open_channel",
    "server_credentials",
]


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """gRPC server credentials from the files of ``tls`` (read now)."""
    client_ca = (
        read_pem(tls.client_ca_file, "server.tls.client_ca_file", "certificate")
        if tls.client_ca_file is not None
        else None
    )
    return grpc.ssl_server_credentials(
        [
            (
                read_pem(tls.key_file, "server.tls.key_file", "key"),
                read_pem(tls.cert_file, "server.tls.cert_file", "certificate"),
            )
        ],
        root_certificates=client_ca,
        require_client_auth=tls.require_client_auth,
    )


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    """gRPC channel credentials from the files of ``tls`` (read now)."""
    return grpc.ssl_channel_credentials(
        root_certificates=(
            read_pem(tls.ca_file, "tls.ca_file", "certificate") if tls.ca_file else None
        ),
        private_key=read_pem(tls.key_file, "tls.key_file", "key") if tls.key_file else None,
        certificate_chain=(
            read_pem(tls.cert_file, "tls.cert_file", "certificate") if tls.cert_file else None
        ),
    )


def channel_options(tls: ClientTls | None) -> list[tuple[str, Any]]:
    """Channel options ``tls`` needs (the server-name override), to add to the others."""
    if tls is None or not tls.enabled or tls.server_name is None:
        return []
    return [("grpc.ssl_target_name_override", tls.server_name)]


def open_channel(
    target: str, tls: ClientTls | None, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``target``: TLS per ``tls``, plaintext when it is unset/off."""
    options = [*(options or []), *channel_options(tls)]
    if tls is None or not tls.enabled:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=options)


def bearer_metadata(secret: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization`` metadata carrying ``secret`` (empty when there is none)."""
    return ((AUTHORIZATION_KEY, BEARER + secret),) if secret else ()


Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class SharedSecretInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <secret>`` (UNAUTHENTICATED).

    Services in ``open_services`` (health checking, reflection by default) need no secret.
    ``secret`` is the secret itself, or a :class:`SecretFile` re-read when it changes.
    """

    def __init__(self, secret: str | SecretFile, open_services: Collection[str]) -> None:
        self._secret = secret if isinstance(secret, SecretFile) else None
        self._fixed = (digest(secret),) if isinstance(secret, str) else ()
        self._open = frozenset(open_services)

    def _expected(self) -> tuple[bytes, ...]:
        return self._secret.digests() if self._secret is not None else self._fixed

    def accepts(self, metadata: Any) -> bool:
        """Whether ``metadata`` carries the secret (constant time in the presented value)."""
        presented = ""
        for key, value in metadata or ():
            if key == AUTHORIZATION_KEY and isinstance(value, str):
                presented = value
        if presented[: len(BEARER)].lower() != BEARER.lower():
            return False
        given = digest(presented[len(BEARER) :].strip())
        # Compare with every accepted secret (no early exit): the time says nothing of which.
        matches = [hmac.compare_digest(given, expected) for expected in self._expected()]
        return any(matches)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        service = service_of(method)
        if handler is None or service in self._open:
            return handler
        if self.accepts(handler_call_details.invocation_metadata):
            return handler
        denied = _refuse(method)
        # The same refusal for every handler shape; it writes nothing, so it needs no stream.
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            if getattr(handler, kind) is not None:
                return handler._replace(**{kind: denied})
        return None  # an unknown handler shape: fail closed (UNIMPLEMENTED)


def _refuse(method: str) -> Behaviour:
    async def denied(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        _log.warning("call without the shared secret refused", method=method, peer=context.peer())
        error = UnauthenticatedError("missing or wrong shared secret: only the router may call")
        await context.abort_with_status(to_grpc_status(error))

    return denied
