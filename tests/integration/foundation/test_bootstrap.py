"""The shared server bootstrap, served for real on loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tierroute.config import ServerSettings
from tierroute.launch import free_port
from tierroute.server import ServerBootstrap
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

from .echo_server import build

_ROOT = Path(__file__).resolve().parents[3]
_GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


@pytest.fixture
async def server() -> AsyncIterator[ServerBootstrap]:
    bootstrap = build(ServerSettings(grace_seconds=5), delay=0.05)
    await bootstrap.start()
    await bootstrap.set_serving(True)
    yield bootstrap
    await bootstrap.stop()


async def test_serves_generate_and_health(server: ServerBootstrap) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text="a b c"))
        events = [e async for e in stub.Generate(request, timeout=5)]
        assert [e.delta.text for e in events[:-1]] == ["a ", "b ", "c "]
        assert events[-1].finished.usage.completion_tokens == 3
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="tierroute.v1.ModelService"), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_domain_error_becomes_invalid_argument(server: ServerBootstrap) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Generate(model_service_pb2.GenerateRequest(), timeout=5):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "prompt.text" in (caught.value.details() or "")


async def test_grpcurl_lists_service_health_and_reflection(server: ServerBootstrap) -> None:
    # The server runs on this event loop: the client must not block it.
    child = await asyncio.create_subprocess_exec(
        _GRPCURL,
        "-plaintext",
        f"127.0.0.1:{server.port}",
        "list",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == 0, stderr.decode()
    listing = stdout.decode().split()
    assert "tierroute.v1.ModelService" in listing
    assert "grpc.health.v1.Health" in listing
    assert "grpc.reflection.v1alpha.ServerReflection" in listing


async def test_health_turns_not_serving_when_shutdown_starts() -> None:
    bootstrap = build(ServerSettings(grace_seconds=5), delay=0.05)
    await bootstrap.start()
    await bootstrap.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bootstrap.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(bootstrap.stop())
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        await stopping


def test_sigterm_drains_an_in_flight_stream() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    script = Path(__file__).with_name("echo_server.py")
    child = subprocess.Popen(
        [sys.executable, str(script), str(port), "0.2"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(100):
                if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1:
                    break
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            words = "one two three four five six seven eight"
            stream = stub.Generate(
                model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text=words)), timeout=30
            )
            first = next(stream)
            assert first.delta.text == "one "
            child.send_signal(signal.SIGTERM)
            rest = list(stream)
        assert [e.delta.text.strip() for e in rest[:-1]] == words.split()[1:]
        assert rest[-1].WhichOneof("event") == "finished"
        assert child.wait(timeout=30) == 0
        _, stderr = child.communicate(timeout=5)
        assert '"event": "draining"' in stderr
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
