"""Debian's ``redis-server`` on a loopback port for a test: started, killed, restarted, stopped.

Installed with apt-get when missing (like Prometheus for the observability tests: ``make
system-deps`` does the same). No persistence by default (a restarted server starts empty, the
harshest recovery); ``durable`` keeps an append-only file synced on every write.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

INSTALL = (
    "redis-server not found on PATH and apt-get could not install it: install Debian's "
    "redis-server package (make system-deps, or apt-get install -y --no-install-recommends "
    "redis-server)"
)


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """The path of redis-server, installed with apt-get when missing (fails, never skips)."""
    found = shutil.which("redis-server")
    if found is None and shutil.which("apt-get") is not None:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
            check=False,
            capture_output=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail(INSTALL, pytrace=False)
    return found


class RedisServer:
    """One redis-server process on a fixed loopback port (kept across restarts)."""

    def __init__(self, workdir: Path, port: int | None = None, durable: bool = False) -> None:
        """``durable``: an append-only file synced on every write, so a SIGKILL loses nothing
        (as a managed Redis with durability would); otherwise nothing is persisted."""
        self.durable = durable
        self.binary = redis_binary()
        self.port = port if port is not None else free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server (a crash: in-memory state is lost)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Terminate the server (kill it when it does not exit in 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
