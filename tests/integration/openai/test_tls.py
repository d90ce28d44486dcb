"""The endpoint dials its router over TLS: a scripted router on the real bootstrap with
``server.tls`` (certificates from :func:`tests.tls_files.make_tls_files`), the endpoint in this
process, and once as its own process configured by the ``--router-*`` flags.

With the CA the router answers; without it, with the wrong name, in plaintext, or without the
client certificate a mutual-TLS router requires, every call is a 503 that says why, and the
router never sees the request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from openai_gateway import OpenAISettings
from openai_gateway.config import UpstreamSettings
from tests.integration.openai.scripted_router import Endpoint, ScriptedRouter
from tests.tls_files import TlsFiles, make_tls_files
from tierroute.config import ClientTls, ServerSettings, ServerTls
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.v1 import router_service_pb2_grpc

USER = [{"role": "user", "content": "hi"}]
StartEndpoint = Callable[[int, ClientTls | None], Awaitable[Endpoint]]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def _start(servicer: ScriptedRouter, tls: ServerTls) -> ServerBootstrap:
    binding = ServiceBinding(
        "tierroute.v1.RouterService",
        lambda s: router_service_pb2_grpc.add_RouterServiceServicer_to_server(servicer, s),
    )
    settings = ServerSettings(metrics_port=None, grace_seconds=1, tls=tls)
    bootstrap = ServerBootstrap(settings, [binding], CollectorRegistry())
    await bootstrap.start()
    await bootstrap.set_serving(True)
    return bootstrap


@pytest.fixture(scope="module")
async def tls_router(tls_files: TlsFiles) -> AsyncIterator[tuple[ScriptedRouter, int]]:
    """A scripted router serving TLS (no client certificate asked)."""
    servicer = ScriptedRouter()
    bootstrap = await _start(
        servicer, ServerTls(cert_file=tls_files.server_cert, key_file=tls_files.server_key)
    )
    yield servicer, bootstrap.port
    await bootstrap.stop()


@pytest.fixture(scope="module")
async def mtls_router(tls_files: TlsFiles) -> AsyncIterator[tuple[ScriptedRouter, int]]:
    """A scripted router that requires a client certificate signed by the test CA."""
    servicer = ScriptedRouter()
    tls = ServerTls(
        cert_file=tls_files.server_cert,
        key_file=tls_files.server_key,
        client_ca_file=tls_files.ca,
        require_client_auth=True,
    )
    bootstrap = await _start(servicer, tls)
    yield servicer, bootstrap.port
    await bootstrap.stop()


@pytest.fixture
async def endpoint_for() -> AsyncIterator[StartEndpoint]:
    """A factory: an endpoint dialling ``port`` with ``tls``, stopped after the test."""
    started: list[Endpoint] = []

    async def start(port: int, tls: ClientTls | None) -> Endpoint:
        settings = OpenAISettings(
            router=UpstreamSettings(target=f"127.0.0.1:{port}", timeout_seconds=5, tls=tls)
        )
        endpoint = Endpoint(settings)
        await endpoint.start()
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        await endpoint.stop()


async def _chat(endpoint: Endpoint) -> str:
    async with openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key="good", max_retries=0, timeout=10
    ) as api:
        reply = await api.chat.completions.create(model="tierroute-auto", messages=USER)  # type: ignore[arg-type]
    return reply.choices[0].message.content or ""


async def _refused(endpoint: Endpoint) -> tuple[openai.APIStatusError, dict[str, str]]:
    """The chat call's error and the readiness answer; both must be 503s."""
    async with openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key="good", max_retries=0, timeout=10
    ) as api:
        with pytest.raises(openai.APIStatusError) as caught:
            await api.chat.completions.create(model="tierroute-auto", messages=USER)  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.port}") as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    detail: dict[str, str] = ready.json()
    return caught.value, detail


async def test_endpoint_is_served_by_a_tls_router_trusting_its_ca(
    tls_router: tuple[ScriptedRouter, int], tls_files: TlsFiles, endpoint_for: StartEndpoint
) -> None:
    servicer, port = tls_router
    endpoint = await endpoint_for(port, ClientTls(ca_file=tls_files.ca))
    before = len(servicer.requests)
    assert await _chat(endpoint) == "Hello there"
    assert len(servicer.requests) == before + 1
    assert servicer.metadata[-1]["authorization"] == "Bearer good"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.port}") as http:
        ready = await http.get("/readyz")
        models = await http.get("/v1/models", headers={"authorization": "Bearer good"})
        # Streaming goes over the same channel.
        streamed = await http.post(
            "/v1/chat/completions",
            json={"model": "small", "messages": USER, "stream": True},
            headers={"authorization": "Bearer good"},
        )
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert [m["id"] for m in models.json()["data"]] == ["tierroute-auto", "small", "large"]
    assert streamed.status_code == 200
    assert "Hello" in streamed.text and streamed.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("system roots only", "not signed by a trusted CA"),
        ("plaintext", "no connection (the router is down, or only one side uses TLS)"),
        ("wrong server name", "does not carry the expected name"),
    ],
)
async def test_without_the_ca_the_endpoint_answers_a_clear_503(
    tls_router: tuple[ScriptedRouter, int],
    tls_files: TlsFiles,
    endpoint_for: StartEndpoint,
    case: str,
    cause: str,
) -> None:
    servicer, port = tls_router
    tls = {
        "system roots only": ClientTls(),
        "plaintext": None,
        "wrong server name": ClientTls(ca_file=tls_files.ca, server_name="router.example"),
    }[case]
    endpoint = await endpoint_for(port, tls)
    before = len(servicer.requests)
    error, ready = await _refused(endpoint)
    assert error.status_code == 503
    assert error.code == "router_unreachable"
    message = error.message
    assert "the endpoint cannot reach the router" in message and cause in message, message
    # The caller learns why, not where: no address of the router in the answer.
    assert "127.0.0.1" not in message and str(port) not in message
    assert ready["status"] == "unavailable" and cause in ready["detail"]
    assert len(servicer.requests) == before  # the router never saw the request


async def test_mutual_tls_router_needs_the_client_certificate(
    mtls_router: tuple[ScriptedRouter, int], tls_files: TlsFiles, endpoint_for: StartEndpoint
) -> None:
    servicer, port = mtls_router
    with_cert = ClientTls(
        ca_file=tls_files.ca, cert_file=tls_files.client_cert, key_file=tls_files.client_key
    )
    assert await _chat(await endpoint_for(port, with_cert)) == "Hello there"
    before = len(servicer.requests)
    rogue = ClientTls(
        ca_file=tls_files.ca,
        cert_file=tls_files.rogue_client_cert,
        key_file=tls_files.rogue_client_key,
    )
    for tls in (ClientTls(ca_file=tls_files.ca), rogue):
        error, _ = await _refused(await endpoint_for(port, tls))
        assert error.status_code == 503 and error.code == "router_unreachable", error.message
    assert len(servicer.requests) == before


async def test_process_flags_open_a_tls_channel(
    tls_router: tuple[ScriptedRouter, int], tls_files: TlsFiles
) -> None:
    _, router_port = tls_router
    args = ["--router", f"127.0.0.1:{router_port}", "--port", "0"]
    # The chart's form: loopback target, the CA of the router's Secret, the Service's name.
    args += ["--router-ca-file", str(tls_files.ca), "--router-server-name", "localhost"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openai_gateway",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TIERROUTE_LOGGING__LEVEL": "INFO"},
    )
    assert process.stderr is not None
    try:
        serving: dict[str, object] = {}
        async with asyncio.timeout(30):
            while not serving:
                line = await process.stderr.readline()
                assert line, "the endpoint exited before serving"
                if line.startswith(b"{") and json.loads(line).get("event") == "serving":
                    serving = json.loads(line)
        assert serving["router_tls"] is True
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{serving['port']}", timeout=10
        ) as http:
            ready = await http.get("/readyz")
            reply = await http.post(
                "/v1/chat/completions",
                json={"model": "tierroute-auto", "messages": USER},
                headers={"authorization": "Bearer good"},
            )
        assert ready.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "Hello there"
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
    assert code == 0


async def test_process_refuses_unusable_tls_files(tmp_path: Path, tls_files: TlsFiles) -> None:
    cases = [
        (["--router-ca-file", str(tmp_path / "missing.pem")], "tls.ca_file"),
        (["--router-ca-file", str(tls_files.server_key)], "tls.ca_file"),
        (["--router-cert-file", str(tls_files.client_cert)], "cert_file and key_file go together"),
    ]
    for flags, expected in cases:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openai_gateway",
            "--port",
            "0",
            *flags,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 2, stderr.decode()
        assert expected in stderr.decode(), stderr.decode()
