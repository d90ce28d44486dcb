"""Service processes for the end-to-end test: started from the repository root, logs to a file,
ready when ``grpc.health.v1`` says SERVING, stopped with SIGTERM (then SIGKILL)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class ServiceProcess:
    """One ``python -m ...`` service with its gRPC port and its log file."""

    def __init__(self, module: str, args: Sequence[str], port: int, log_path: Path, cwd: Path):
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def target(self) -> str:
        """gRPC target."""
        return f"127.0.0.1:{self.port}"

    async def wait_serving(self, timeout: float = 60.0) -> None:
        """Poll the health service until SERVING; fail with the log if it dies or times out."""
        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline and self._process.poll() is None:
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.log_path.name}: not serving\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log (for failure messages)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def json_lines(self) -> list[dict[str, Any]]:
        """The log's JSON lines (other lines, such as library warnings, are skipped)."""
        self._log.flush()
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return lines

    def stop(self) -> int:
        """SIGTERM, wait for the graceful stop; SIGKILL after 20 s. Returns the exit code."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()
        return int(self._process.returncode)
