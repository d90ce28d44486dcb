"""TLS and mutual TLS on the real bootstrap and the router, with certificates made for the test.

A TLS client is served and a plaintext one is not; under mutual TLS a client without a
certificate, or with one from another CA, is refused and the router's certificate accepted.
Health, reflection (grpcurl) and the client library work over TLS; bad certificate settings
stop a service at start-up with the setting's name.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_svc.server import build_router
from tests.tls_files import TlsFiles, make_tls_files
from tests.unit.router.fake_model import start_fake
from tests.unit.router.routers import router_settings
from tierroute.client import ClientTls, RetryableRouterError, Router
from tierroute.config import ServerSettings, ServerTls
from tierroute.server import ServerBootstrap
from tierroute.transport import open_channel
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

from .echo_server import build

_ROOT = Path(__file__).resolve().parents[3]
_GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
SERVICE = "tierroute.v1.ModelService"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


async def _serve(tls_settings: ServerTls) -> ServerBootstrap:
    settings = ServerSettings(metrics_port=None, grace_seconds=1, tls=tls_settings, health_port=0)
    bootstrap = build(settings, delay=0.0)
    await bootstrap.start()
    await bootstrap.set_serving(True)
    return bootstrap


@pytest.fixture(scope="module")
async def tls_server(tls: TlsFiles) -> AsyncIterator[ServerBootstrap]:
    bootstrap = await _serve(ServerTls(cert_file=tls.server_cert, key_file=tls.server_key))
    yield bootstrap
    await bootstrap.stop()


@pytest.fixture(scope="module")
async def mtls_server(tls: TlsFiles) -> AsyncIterator[ServerBootstrap]:
    bootstrap = await _serve(
        ServerTls(
            cert_file=tls.server_cert,
            key_file=tls.server_key,
            client_ca_file=tls.ca,
            require_client_auth=True,
        )
    )
    yield bootstrap
    await bootstrap.stop()


async def _echo(channel: grpc.aio.Channel) -> str:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
    request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text="over tls"))
    events = [e async for e in stub.Generate(request, timeout=5)]
    return "".join(e.delta.text for e in events[:-1])


async def _refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _echo(channel)
    return info.value.code()


async def test_tls_client_is_served_and_plaintext_is_not(
    tls: TlsFiles, tls_server: ServerBootstrap
) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    async with open_channel(target, ClientTls(ca_file=tls.ca)) as channel:
        assert await _echo(channel) == "over tls "
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(target) as plain:
        assert await _refused(plain) == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the server's CA (system roots only) is refused too.
    async with open_channel(target, ClientTls()) as untrusting:
        assert await _refused(untrusting) == grpc.StatusCode.UNAVAILABLE


async def test_grpcurl_lists_services_over_tls(tls: TlsFiles, tls_server: ServerBootstrap) -> None:
    # The server runs on this event loop: the client must not block it.
    child = await asyncio.create_subprocess_exec(
        _GRPCURL,
        "-cacert",
        str(tls.ca),
        f"127.0.0.1:{tls_server.port}",
        "list",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == 0, stderr.decode()
    listing = set(stdout.decode().split())
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listing


async def test_mutual_tls_needs_a_certificate_from_the_ca(
    tls: TlsFiles, mtls_server: ServerBootstrap
) -> None:
    target = f"127.0.0.1:{mtls_server.port}"
    async with open_channel(target, ClientTls(ca_file=tls.ca)) as no_cert:
        assert await _refused(no_cert) == grpc.StatusCode.UNAVAILABLE
    rogue = ClientTls(
        ca_file=tls.ca, cert_file=tls.rogue_client_cert, key_file=tls.rogue_client_key
    )
    async with open_channel(target, rogue) as channel:
        assert await _refused(channel) == grpc.StatusCode.UNAVAILABLE
    router = ClientTls(ca_file=tls.ca, cert_file=tls.client_cert, key_file=tls.client_key)
    async with open_channel(target, router) as channel:
        assert await _echo(channel) == "over tls "


async def test_client_library_over_mutual_tls_to_the_router(tls: TlsFiles) -> None:
    small = await start_fake("small")
    large = await start_fake("large")
    server = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": None,
        "grace_seconds": 1,
        "tls": {
            "cert_file": tls.server_cert,
            "key_file": tls.server_key,
            "client_ca_file": tls.ca,
            "require_client_auth": True,
        },
    }
    app = build_router(
        router_settings({"small": [small.target], "large": [large.target]}, server=server)
    )
    await app.start()
    target = f"localhost:{app.port}"
    client_tls = ClientTls(ca_file=tls.ca, cert_file=tls.client_cert, key_file=tls.client_key)
    try:
        async with Router(target, tls=client_tls, timeout=10) as router:
            answer = await router.complete("What is the capital of France?", max_tokens=8)
            assert answer.text == "Paris is the capital."
            assert answer.finished.tier == "small"
        async with Router(target, tls=ClientTls(ca_file=tls.ca), timeout=5, retries=0) as router:
            with pytest.raises(RetryableRouterError) as info:
                await router.complete("hello there", max_tokens=8)
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop()
        await small.server.stop(None)
        await large.server.stop(None)


async def test_plaintext_health_port_serves_health_only(
    mtls_server: ServerBootstrap,
) -> None:
    # What a kubelet gRPC probe (no TLS) sees, next to a mutual-TLS main port.
    assert mtls_server.health_port is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_server.health_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await _refused(channel) == grpc.StatusCode.UNIMPLEMENTED


def _start(module: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=_ROOT,
        env={**os.environ, **env},
    )


def test_bad_tls_files_or_secret_stop_the_services_at_start(tls: TlsFiles, tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(
        json.dumps(
            {
                "classifier": {"enabled": False},
                "server": {
                    "tls": {"cert_file": str(tmp_path / "nope.pem"), "key_file": str(tls.ca)}
                },
            }
        )
    )
    router = _start("router_svc", config, {})
    assert router.returncode == 2
    assert "server.tls.cert_file: cannot read" in router.stderr

    secret = "too-short-secret"[:10]
    model = tmp_path / "model.yaml"
    model.write_text(json.dumps({"tier": "small", "auth": {"mode": "shared_secret"}}))
    refused = _start("model_svc", model, {"TIERROUTE_AUTH__SHARED_SECRET": secret})
    assert refused.returncode == 2
    assert "at least 16 characters" in refused.stderr
    assert secret not in refused.stderr + refused.stdout
