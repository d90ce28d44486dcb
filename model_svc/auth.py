"""Who may call a model service: the interceptors its ``auth`` settings ask for.

- ``auth.mode: shared_secret``: :class:`tierroute.transport.SharedSecretInterceptor`; with
  ``shared_secret_file`` the file is followed as it is rotated (the previous secret accepted
  for ``previous_secret_seconds``), with ``TIERROUTE_AUTH__SHARED_SECRET`` it is fixed.
- ``auth.allowed_peer_sans`` (mutual TLS): :class:`tierroute.peer_auth.PeerSanInterceptor`
  pins the router's certificate names. It runs first, so a wrong certificate is told so
  even when it also lacks the secret.

``mtls`` alone needs no interceptor: the handshake requires a certificate of the client CA.
"""

from __future__ import annotations

import grpc

from model_svc.config import ModelServiceSettings
from tierroute.peer_auth import PeerSanInterceptor, SecretFile
from tierroute.transport import SharedSecretInterceptor


def peer_auth_interceptors(settings: ModelServiceSettings) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors enforcing ``settings.auth``, outermost first."""
    auth = settings.auth
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if auth.allowed_peer_sans:
        interceptors.append(PeerSanInterceptor(auth.allowed_peer_sans, auth.open_services))
    if auth.mode == "shared_secret":
        if auth.shared_secret_file is not None:
            source: str | SecretFile = SecretFile(
                auth.shared_secret_file, grace_seconds=auth.previous_secret_seconds
            )
        else:
            secret = auth.secret()
            assert secret is not None  # the settings' validator requires one in this mode
            source = secret
        interceptors.append(SharedSecretInterceptor(source, auth.open_services))
    return interceptors
