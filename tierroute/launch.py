"""Start a tierroute service (``python -m <module>``) as a child process and wait until it serves.

Generic: it knows the flags ``--port``/``--metrics-port`` and ``grpc.health.v1``, nothing about
any particular service. Used by integration tests and by ``tierroute up``::

    with launch_module("model_svc", ["--tier", "small"], timeout_seconds=180) as tier:
        channel = grpc.insecure_channel(tier.address)

The child's output (stdout and stderr merged) is drained continuously, kept as a tail for error
messages and optionally copied to a log file. :meth:`ServiceProcess.stop` sends SIGTERM, waits
for a grace period, then SIGKILLs the child's whole process group (engine workers included).

No child outlives its owner: a child started from the main thread gets SIGTERM when the process
that started it dies, even by SIGKILL (Linux's parent-death signal), and when a child dies of
anything, a watcher SIGKILLs what is left of its process group (a model service SIGKILLed
takes its vLLM ``EngineCore`` with it). Children write their caches inside the project
(:func:`contained_environment`), never under ``$HOME``.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tierroute.errors import UnavailableError
from tierroute.runtime_env import contained_environment

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when the thread that forked it exits."""
PARENT_DEATH_SIGNAL = signal.SIGTERM
"""What an orphaned child gets: SIGTERM, so a model service still stops its engine cleanly."""


class LaunchError(UnavailableError):
    """A child service exited or did not become SERVING in time; the message has its output."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent(parent: int, prctl: Callable[..., int]) -> None:
    """In the child, before exec: SIGTERM when the starting thread dies (kept across exec)."""
    prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os.kill(os.getpid(), PARENT_DEATH_SIGNAL)


def _parent_death_hook() -> Callable[[], None] | None:
    """The ``preexec_fn`` that arms the parent-death signal, or ``None`` where it cannot work.

    Linux sends it when the *thread* that forked the child exits, so only children started
    from the main thread (whose exit is the process's) get it; a worker thread's exit would
    stop a healthy child. ``prctl`` is looked up here, in the parent: the forked child only
    calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    return lambda: _die_with_parent(parent, prctl)


class ServiceProcess:
    """A running child service: its ports, its output tail, and a clean stop."""

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        port: int | None = None,
        metrics_port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        tail_lines: int = 60,
        python: str = sys.executable,
    ) -> None:
        """Start ``python -m module args --port P [--metrics-port M]`` (ports picked if None).

        Pass ``metrics_port=-1`` to give no ``--metrics-port`` flag at all.
        """
        self.module = module
        self.port = port if port is not None else free_port()
        self.metrics_port: int | None = None
        command = [python, "-m", module, *args, "--port", str(self.port)]
        if metrics_port != -1:
            self.metrics_port = metrics_port if metrics_port is not None else free_port()
            command += ["--metrics-port", str(self.metrics_port)]
        self.command = command
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._log: IO[str] | None = log_path.open("a", encoding="utf-8") if log_path else None
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **contained_environment(), **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # Own process group, so a final SIGKILL also reaches engine worker processes.
            start_new_session=True,
            preexec_fn=_parent_death_hook(),
        )
        self._reader = threading.Thread(target=self._drain, name=f"{module}-output", daemon=True)
        self._reader.start()
        self._reaper = threading.Thread(target=self._reap, name=f"{module}-reaper", daemon=True)
        self._reaper.start()

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the child."""
        return self.process.pid

    def _reap(self) -> None:
        # However the child ends (SIGKILL from anyone included), the processes it started
        # (vLLM's EngineCore and its worker) stay in its process group: end them too, or
        # they live on, re-parented to init, holding the model's memory. WNOWAIT leaves the
        # exit status to Popen, and the unreaped leader keeps its group id from being reused.
        try:
            os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return  # already reaped by stop(), which ended the group itself
        self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def _drain(self) -> None:
        # Reading continuously also keeps a chatty child from blocking on a full pipe.
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._tail.append(line.rstrip("\n"))
            if self._log is not None:
                self._log.write(line)
                self._log.flush()

    def output_tail(self) -> list[str]:
        """The last lines the child printed."""
        return list(self._tail)

    def _error(self, what: str) -> LaunchError:
        tail = "\n".join(self.output_tail()[-25:])
        return LaunchError(f"{self.module} {what}; last output lines:\n{tail}")

    def wait_until_serving(self, timeout_seconds: float = 120.0, service: str = "") -> None:
        """Poll ``grpc.health.v1`` until SERVING; raise :class:`LaunchError` on exit or timeout."""
        deadline = time.monotonic() + timeout_seconds
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                code = self.process.poll()
                if code is not None:
                    self._reader.join(timeout=2)
                    raise self._error(f"exited with code {code} before serving")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise self._error(f"was not SERVING after {timeout_seconds:.0f} s")
                try:
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(service=service),
                        timeout=min(1.0, remaining),
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(0.2)

    def stop(self, grace_seconds: float = 15.0) -> int:
        """SIGTERM, wait up to ``grace_seconds``, then SIGKILL the group; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_seconds)
        # Engine workers normally exit with their parent; make sure none outlives it.
        self._kill_group()
        code = self.process.wait()
        self._reaper.join(timeout=2)
        self._reader.join(timeout=2)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def launch_module(
    module: str,
    args: Sequence[str] = (),
    *,
    timeout_seconds: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
) -> ServiceProcess:
    """Start ``python -m module`` on free loopback ports and return once it is SERVING."""
    child = ServiceProcess(
        module, args, port=port, metrics_port=metrics_port, env=env, cwd=cwd, log_path=log_path
    )
    try:
        child.wait_until_serving(timeout_seconds)
    except BaseException:
        child.stop()
        raise
    return child
