"""Certificates and the shared secret rotated under running services, no restart.

Real loopback servers (the bootstrap and the real ``ModelServer`` over the scripted engine)
with certificates made for the test. The served certificate is read back with the standard
library's TLS client, so the test sees exactly what a new caller's handshake gets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry

from model_svc.config import ModelServiceSettings
from model_svc.engines.scripted import ScriptedEngine
from model_svc.server import ModelServer
from tests.integration.foundation.echo_server import EchoModel
from tests.tls_files import TlsFiles, make_tls_files, reissue_server
from tierroute.config import ClientTls, ServerSettings, ServerTls
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.transport import bearer_metadata, open_channel
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
EXPIRY = "tierroute_tls_certificate_expiry_timestamp_seconds"


def _served_certificate(port: int, tls: TlsFiles, client: bool = False) -> bytes:
    """DER of the certificate a new connection's handshake is given."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    context.set_alpn_protocols(["h2"])
    if client:
        context.load_cert_chain(tls.router_cert, tls.router_key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return der


def _der(path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


async def _info(port: int, tls: TlsFiles) -> str:
    async with open_channel(f"localhost:{port}", ClientTls(ca_file=tls.ca)) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        reply = await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
    return str(reply.model_name)


@pytest.fixture
async def echo(
    tmp_path: Path,
) -> AsyncIterator[tuple[ServerBootstrap, CollectorRegistry, TlsFiles]]:
    tls = make_tls_files(tmp_path / "certs")
    registry = CollectorRegistry()
    servicer = EchoModel(0.0)
    binding = ServiceBinding(
        name=SERVICE,
        register=lambda server: model_service_pb2_grpc.add_ModelServiceServicer_to_server(  # type: ignore[no-untyped-call]
            servicer, server
        ),
    )
    settings = ServerSettings(
        metrics_port=None,
        grace_seconds=1,
        tls=ServerTls(cert_file=tls.server_cert, key_file=tls.server_key),
    )
    bootstrap = ServerBootstrap(settings, [binding], registry)
    await bootstrap.start()
    await bootstrap.set_serving(True)
    yield bootstrap, registry, tls
    await bootstrap.stop()


def _expiry(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(EXPIRY, {"service": SERVICE})


async def test_a_rotated_certificate_is_served_to_new_connections(
    echo: tuple[ServerBootstrap, CollectorRegistry, TlsFiles],
) -> None:
    bootstrap, registry, tls = echo
    port = bootstrap.port
    first = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    assert await asyncio.to_thread(_served_certificate, port, tls) == _der(tls.server_cert)
    assert _expiry(registry) == first.not_valid_after_utc.timestamp()

    async with open_channel(f"localhost:{port}", ClientTls(ca_file=tls.ca)) as kept:
        stub = model_service_pb2_grpc.ModelServiceStub(kept)  # type: ignore[no-untyped-call]
        await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
        rotated = reissue_server(tls, dt.timedelta(days=30))

        served = await asyncio.to_thread(_served_certificate, port, tls)
        assert served == rotated.public_bytes(serialization.Encoding.DER)
        assert served != first.public_bytes(serialization.Encoding.DER)
        assert _expiry(registry) == rotated.not_valid_after_utc.timestamp()
        assert bootstrap.certificates is not None and bootstrap.certificates.reloads == 1
        # A connection opened before the rotation keeps working; new gRPC clients too.
        await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
    assert await _info(port, tls) == "echo"


async def test_a_half_written_rotation_keeps_the_old_certificate(
    echo: tuple[ServerBootstrap, CollectorRegistry, TlsFiles], tmp_path: Path
) -> None:
    bootstrap, registry, tls = echo
    port = bootstrap.port
    before = _der(tls.server_cert)
    old_cert = tls.server_cert.read_bytes()
    reissue_server(tls, dt.timedelta(days=7))
    new_cert = tls.server_cert.read_bytes()
    tls.server_cert.write_bytes(old_cert)  # the new key is there, its certificate not yet

    assert await asyncio.to_thread(_served_certificate, port, tls) == before
    assert await _info(port, tls) == "echo"
    tls.server_cert.write_bytes(new_cert)  # the writer finishes
    served = await asyncio.to_thread(_served_certificate, port, tls)
    assert served == _der(tls.server_cert) != before
    assert (
        _expiry(registry)
        == x509.load_pem_x509_certificate(new_cert).not_valid_after_utc.timestamp()
    )


async def _model_server(**settings: Any) -> ModelServer:
    config = ModelServiceSettings.load(
        None,
        tier="small",
        prices={"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2},
        **settings,
    )
    server = ModelServer(config, ScriptedEngine())
    await server.bootstrap.start()
    await server.warm_up()
    await server.bootstrap.set_serving(True)
    return server


async def _generate_code(port: int, tls: TlsFiles, secret: str) -> grpc.StatusCode:
    async with open_channel(f"localhost:{port}", ClientTls(ca_file=tls.ca)) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text="hi there"))
        try:
            events = [
                e async for e in stub.Generate(request, timeout=5, metadata=bearer_metadata(secret))
            ]
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    assert events[-1].finished.usage.completion_tokens > 0
    return grpc.StatusCode.OK


async def test_a_rotated_shared_secret_is_accepted_and_the_old_one_retired(
    tmp_path: Path,
) -> None:
    tls = make_tls_files(tmp_path / "certs")
    secret_file = tmp_path / "peer-secret"
    old, new = secrets.token_hex(24), secrets.token_hex(24)
    secret_file.write_text(old + "\n")
    server = await _model_server(
        server={
            "port": 0,
            "metrics_port": None,
            "grace_seconds": 1,
            "tls": {"cert_file": tls.server_cert, "key_file": tls.server_key},
        },
        auth={
            "mode": "shared_secret",
            "shared_secret_file": secret_file,
            "previous_secret_seconds": 1.0,
        },
    )
    port = server.bootstrap.port
    try:
        assert await _generate_code(port, tls, old) == grpc.StatusCode.OK
        assert await _generate_code(port, tls, new) == grpc.StatusCode.UNAUTHENTICATED
        secret_file.write_text(new + "\n")  # rotated in place
        assert await _generate_code(port, tls, new) == grpc.StatusCode.OK
        # The router's copy lags: the old secret still works for the grace period...
        assert await _generate_code(port, tls, old) == grpc.StatusCode.OK
        await asyncio.sleep(1.2)
        # ... and not after it.
        assert await _generate_code(port, tls, old) == grpc.StatusCode.UNAUTHENTICATED
        assert await _generate_code(port, tls, new) == grpc.StatusCode.OK
        # A broken write (too short) keeps the current secret.
        secret_file.write_text("short\n")
        assert await _generate_code(port, tls, new) == grpc.StatusCode.OK
        assert await _generate_code(port, tls, "short") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.bootstrap.stop()
        await server.shutdown()
