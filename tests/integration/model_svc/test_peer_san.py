"""Mutual TLS with the router's identity pinned: only its certificate names may call.

The real ``ModelServer`` (interceptors, TLS) over the scripted engine, on loopback, with
certificates made for the test: the router's carries a DNS and a URI SAN, an intruder's (same
CA) another DNS name, a third client none. The real router with the router's certificate is
served end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from model_svc.config import ModelServiceSettings
from model_svc.engines.scripted import ScriptedEngine
from model_svc.server import ModelServer
from router_svc.server import build_router
from tests.tls_files import INTRUDER_DNS, ROUTER_DNS, ROUTER_URI, TlsFiles, make_tls_files
from tests.unit.router.routers import router_settings
from tierroute.config import ClientTls
from tierroute.transport import open_channel
from tierroute.v1 import (
    common_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    router_service_pb2_grpc,
)
from tierroute.v1 import router_service_pb2 as rpb


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("san") / "certs")


async def _pinned(tls: TlsFiles, allowed: list[str], **auth: Any) -> ModelServer:
    config = ModelServiceSettings.load(
        None,
        tier="small",
        prices={"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2},
        server={
            "port": 0,
            "metrics_port": None,
            "grace_seconds": 1,
            "tls": {
                "cert_file": tls.server_cert,
                "key_file": tls.server_key,
                "client_ca_file": tls.ca,
                "require_client_auth": True,
            },
        },
        auth={"mode": "mtls", "allowed_peer_sans": allowed, **auth},
    )
    server = ModelServer(config, ScriptedEngine())
    await server.bootstrap.start()
    await server.warm_up()
    await server.bootstrap.set_serving(True)
    return server


@pytest.fixture
async def pinned_dns(tls: TlsFiles) -> AsyncIterator[ModelServer]:
    server = await _pinned(tls, [ROUTER_DNS])
    yield server
    await server.bootstrap.stop()
    await server.shutdown()


def _client(tls: TlsFiles, cert: Path, key: Path) -> ClientTls:
    return ClientTls(ca_file=tls.ca, cert_file=cert, key_file=key)


async def _call(server: ModelServer, client: ClientTls) -> grpc.aio.AioRpcError | None:
    """Generate (a stream) and GetModelInfo (unary); the error both gave, or None."""
    target = f"localhost:{server.bootstrap.port}"
    errors: list[grpc.aio.AioRpcError] = []
    async with open_channel(target, client) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text="hi there"))
        try:
            events = [e async for e in stub.Generate(request, timeout=5)]
            assert events[-1].finished.usage.completion_tokens > 0
        except grpc.aio.AioRpcError as exc:
            errors.append(exc)
        try:
            info = await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
            assert info.tier == "small"
        except grpc.aio.AioRpcError as exc:
            errors.append(exc)
    if not errors:
        return None
    assert len(errors) == 2 and errors[0].code() == errors[1].code()
    return errors[0]


async def test_the_router_certificate_is_served(pinned_dns: ModelServer, tls: TlsFiles) -> None:
    assert await _call(pinned_dns, _client(tls, tls.router_cert, tls.router_key)) is None


async def test_another_certificate_of_the_ca_is_refused_with_its_names(
    pinned_dns: ModelServer, tls: TlsFiles
) -> None:
    error = await _call(pinned_dns, _client(tls, tls.intruder_cert, tls.intruder_key))
    assert error is not None
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert INTRUDER_DNS in str(error.details())
    assert "allowed_peer_sans" in str(error.details())
    # A certificate of the CA without any SAN: refused as well.
    error = await _call(pinned_dns, _client(tls, tls.client_cert, tls.client_key))
    assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_stays_open_to_certificates_of_the_ca(
    pinned_dns: ModelServer, tls: TlsFiles
) -> None:
    client = _client(tls, tls.intruder_cert, tls.intruder_key)
    async with open_channel(f"localhost:{pinned_dns.bootstrap.port}", client) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_uri_san_pin_and_the_real_router(tls: TlsFiles) -> None:
    server = await _pinned(tls, [ROUTER_URI])
    target = f"localhost:{server.bootstrap.port}"
    router = build_router(
        router_settings(
            {"small": [target], "large": [target]},
            tier_tls={"ca_file": tls.ca, "cert_file": tls.router_cert, "key_file": tls.router_key},
        )
    )
    await router.start()
    try:
        assert await _call(server, _client(tls, tls.router_cert, tls.router_key)) is None
        error = await _call(server, _client(tls, tls.intruder_cert, tls.intruder_key))
        assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            request = rpb.RouterServiceGenerateRequest(
                prompt=common_pb2.Prompt(text="What is six times seven?"),
                sampling=common_pb2.SamplingParams(max_tokens=16),
            )
            events = [event async for event in stub.Generate(request, timeout=10)]
        assert events[-1].finished.served_tier == "small"
    finally:
        await router.stop()
        await server.bootstrap.stop()
        await server.shutdown()


def test_pinning_needs_mutual_tls(tls: TlsFiles) -> None:
    with pytest.raises(ValueError, match=r"allowed_peer_sans needs server\.tls"):
        ModelServiceSettings.load(
            None,
            tier="small",
            server={"tls": {"cert_file": tls.server_cert, "key_file": tls.server_key}},
            auth={"allowed_peer_sans": [ROUTER_DNS]},
        )
