"""Model services that accept only the router: shared secret or mutual TLS, over real gRPC.

The model services are the real ``ModelServer`` (servicer, validation, interceptors, TLS) over
the scripted engine of ``model_svc.engines.scripted`` (one token per word, no vLLM),
served in-process on loopback with certificates made for the test. The router in front of
them is the real one. The secret is made at test time and must never reach a log.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from model_svc.config import ModelServiceSettings
from model_svc.engines.scripted import ScriptedEngine
from model_svc.server import ModelServer
from router_svc.server import RouterApp, build_router
from tests.tls_files import TlsFiles, make_tls_files
from tests.unit.router.routers import router_settings
from tierroute.config import ClientTls, LoggingSettings
from tierroute.logging import configure_logging
from tierroute.transport import open_channel
from tierroute.v1 import (
    common_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    router_service_pb2_grpc,
)
from tierroute.v1 import router_service_pb2 as rpb

MAX_PROMPT_TOKENS = 20
ANSWER = "The answer is forty-two."


@dataclass
class Peers:
    """Two model services that need the secret, and a router that has it."""

    tls: TlsFiles
    secret: str
    secret_file: Path
    small: ModelServer
    large: ModelServer
    router: RouterApp
    logs: io.StringIO


async def _model_server(tier: str, **settings: Any) -> ModelServer:
    config = ModelServiceSettings.load(
        None,
        tier=tier,
        prices={"input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2},
        logging={"level": "DEBUG"},
        **settings,
    )
    server = ModelServer(config, ScriptedEngine())
    await server.bootstrap.start()
    await server.warm_up()
    await server.bootstrap.set_serving(True)
    return server


async def _stop(server: ModelServer) -> None:
    await server.bootstrap.stop()
    await server.shutdown()


def _server_section(tls: TlsFiles, mutual: bool = False) -> dict[str, Any]:
    section: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": None,
        "grace_seconds": 1,
        "tls": {"cert_file": tls.server_cert, "key_file": tls.server_key},
    }
    if mutual:
        section["tls"].update(client_ca_file=tls.ca, require_client_auth=True)
    return section


async def _router(targets: dict[str, str], **overrides: Any) -> RouterApp:
    app = build_router(
        router_settings({tier: [target] for tier, target in targets.items()}, **overrides)
    )
    await app.start()
    return app


def _target(server: ModelServer) -> str:
    # The test certificate names localhost and 127.0.0.1.
    return f"localhost:{server.bootstrap.port}"


@pytest.fixture(scope="module")
def captured_logs() -> Iterator[io.StringIO]:
    """Every structlog line of the module's services, at DEBUG."""
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="DEBUG"), stream=stream)
    yield stream
    structlog.reset_defaults()


@pytest.fixture(scope="module")
async def peers(
    tmp_path_factory: pytest.TempPathFactory, captured_logs: io.StringIO
) -> AsyncIterator[Peers]:
    directory = tmp_path_factory.mktemp("peer-auth")
    tls = make_tls_files(directory / "certs")
    secret = secrets.token_hex(24)
    secret_file = directory / "peer-secret"
    secret_file.write_text(secret + "\n")
    auth = {"mode": "shared_secret", "shared_secret_file": secret_file}
    limits = {"max_prompt_tokens": MAX_PROMPT_TOKENS}
    small = await _model_server("small", server=_server_section(tls), auth=auth, limits=limits)
    large = await _model_server("large", server=_server_section(tls), auth=auth, limits=limits)
    router = await _router(
        {"small": _target(small), "large": _target(large)},
        tier_tls={"ca_file": tls.ca},
        tier_auth={"shared_secret_file": secret_file},
    )
    yield Peers(tls, secret, secret_file, small, large, router, captured_logs)
    await router.stop()
    await _stop(small)
    await _stop(large)


async def _generate(app: RouterApp, text: str) -> list[rpb.RouterServiceGenerateResponse]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        request = rpb.RouterServiceGenerateRequest(
            prompt=common_pb2.Prompt(text=text),
            sampling=common_pb2.SamplingParams(max_tokens=16),
        )
        return [event async for event in stub.Generate(request, timeout=10)]


async def _router_error(app: RouterApp, text: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _generate(app, text)
    return info.value


def _text(events: list[rpb.RouterServiceGenerateResponse]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


async def _direct(peers: Peers, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """Call the small model service directly over TLS; the status code it answers."""
    async with open_channel(_target(peers.small), ClientTls(ca_file=peers.tls.ca)) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text="hi there"))
        try:
            events = [e async for e in stub.Generate(request, timeout=5, metadata=metadata)]
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        assert events[-1].finished.usage.completion_tokens > 0
        return grpc.StatusCode.OK


def _requests(server: ModelServer, code: str) -> float:
    value = server.registry.get_sample_value(
        "tierroute_model_requests_total", {"tier": server.settings.tier, "code": code}
    )
    return value or 0.0


async def test_router_with_the_secret_is_served_over_tls(peers: Peers) -> None:
    events = await _generate(peers.router, "What is six times seven?")
    assert events[-1].finished.served_tier == "small"
    assert _text(events) == ANSWER


async def test_missing_or_wrong_secret_is_unauthenticated_and_health_stays_open(
    peers: Peers,
) -> None:
    assert await _direct(peers, ()) == grpc.StatusCode.UNAUTHENTICATED
    wrong = (("authorization", "Bearer " + secrets.token_hex(24)),)
    assert await _direct(peers, wrong) == grpc.StatusCode.UNAUTHENTICATED
    basic = (("authorization", "Basic " + peers.secret),)
    assert await _direct(peers, basic) == grpc.StatusCode.UNAUTHENTICATED
    right = (("authorization", "Bearer " + peers.secret),)
    assert await _direct(peers, right) == grpc.StatusCode.OK
    async with open_channel(_target(peers.small), ClientTls(ca_file=peers.tls.ca)) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_router_with_the_wrong_secret_is_refused_by_every_tier(
    peers: Peers, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-secret"
    wrong.write_text(secrets.token_hex(24))
    app = await _router(
        {"small": _target(peers.small), "large": _target(peers.large)},
        tier_tls={"ca_file": peers.tls.ca},
        tier_auth={"shared_secret_file": wrong},
    )
    try:
        error = await _router_error(app, "What is six times seven?")
    finally:
        await app.stop()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = error.details() or ""
    assert "small: UNAUTHENTICATED" in details and "large: UNAUTHENTICATED" in details


async def test_prompt_over_the_token_limit_is_passed_through_without_retry(peers: Peers) -> None:
    small_before = _requests(peers.small, "INVALID_ARGUMENT")
    large_before = _requests(peers.large, "INVALID_ARGUMENT") + _requests(peers.large, "OK")
    words = " ".join(["word"] * 30)  # 31 tokens with the scripted engine's first token
    error = await _router_error(peers.router, words)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert "is 31 tokens" in details
    assert f"limit of this model service is {MAX_PROMPT_TOKENS} prompt tokens" in details
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    )
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert bad.field_violations[0].field == "prompt"
    # One call to the routed tier; no retry, no escalation to the large tier.
    assert _requests(peers.small, "INVALID_ARGUMENT") == small_before + 1
    assert _requests(peers.large, "INVALID_ARGUMENT") + _requests(peers.large, "OK") == (
        large_before
    )
    # Within the limit, the same service answers.
    short = " ".join(["word"] * (MAX_PROMPT_TOKENS - 1))
    assert _text(await _generate(peers.router, short)) == ANSWER


async def test_mutual_tls_model_service_serves_only_the_router_certificate(
    peers: Peers,
) -> None:
    tls = peers.tls
    server = await _model_server(
        "small", server=_server_section(tls, mutual=True), auth={"mode": "mtls"}
    )
    target = _target(server)
    with_cert = await _router(
        {"small": target, "large": target},
        tier_tls={"ca_file": tls.ca, "cert_file": tls.client_cert, "key_file": tls.client_key},
    )
    without_cert = await _router({"small": target, "large": target}, tier_tls={"ca_file": tls.ca})
    try:
        assert _text(await _generate(with_cert, "What is six times seven?")) == ANSWER
        error = await _router_error(without_cert, "What is six times seven?")
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        rogue = ClientTls(
            ca_file=tls.ca, cert_file=tls.rogue_client_cert, key_file=tls.rogue_client_key
        )
        async with open_channel(target, rogue) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await with_cert.stop()
        await without_cert.stop()
        await _stop(server)


async def test_the_secret_never_reaches_the_logs(
    peers: Peers, capfd: pytest.CaptureFixture[str]
) -> None:
    # Produce both kinds of event here, so the check does not depend on test order.
    wrong = (("authorization", "Bearer " + peers.secret[::-1]),)
    assert await _direct(peers, wrong) == grpc.StatusCode.UNAUTHENTICATED
    assert _text(await _generate(peers.router, "What is six times seven?")) == ANSWER
    logs = peers.logs.getvalue()
    assert "call without the shared secret refused" in logs  # the capture does see the services
    assert "request_done" in logs
    out, err = capfd.readouterr()
    for text in (logs, out, err):
        assert peers.secret not in text
        assert peers.secret[::-1] not in text
