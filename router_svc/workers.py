"""All cores: worker processes sharing the router's listening port, metrics that add up.

With ``workers.count`` above 1 (``auto``: the cores this process may use, its CPU affinity
and cgroup quota), ``python -m router_svc`` becomes a supervisor: it fixes the gRPC port (a free
one when 0), points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory, and starts the
workers. Each worker is a whole router (its own event loop, classifier and tier channels)
listening on the same port with ``SO_REUSEPORT``, so the kernel spreads connections over them;
its metrics are written to the shared directory, and the supervisor serves ``/metrics`` on the
configured port by summing them (prometheus_client's multiprocess collection: counters and
histograms add up; gauges carry a ``pid`` label or are summed per their mode). The extra health
port (kubelet probes) is served by worker 0. If a worker dies the supervisor stops the others
and exits non-zero, so the pod restarts whole rather than serving on fewer cores unnoticed.

A learned start tier with a ``state_path`` keeps one file per worker (``<name>.<index>``), and
the quality loop one ``state_dir/worker-<index>``: each worker learns from the requests it
serves (and ``GetQuality`` answers for the worker that takes the call) until a shared store
replaces the files.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import grpc
import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from pydantic import Field

from tierroute.config import Section, ServerSettings
from tierroute.server import ServerBootstrap
from tierroute.status import ErrorMappingInterceptor

if TYPE_CHECKING:
    from router_svc.config import RouterSettings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_log = structlog.get_logger("router_svc.workers")


class WorkerSettings(Section):
    """How many router processes serve the port."""

    count: int | Literal["auto"] = 1
    """Worker processes; ``auto``: one per core this process may use (affinity and cgroup
    CPU quota, rounded up); 1: no supervisor, the process serves itself."""
    metrics_dir: Path | None = None
    """Directory of the workers' metric files (emptied at start); ``None``: a fresh temporary
    directory, removed at exit."""
    stop_seconds: float = Field(default=30.0, gt=0)
    """Time the workers get to drain after SIGTERM before they are killed (seconds)."""


def cores_given(cgroup_cpu_max: Path = _CGROUP_CPU_MAX) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 quota."""
    cores = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cores)


def worker_count(settings: WorkerSettings) -> int:
    """The number of workers ``settings`` asks for."""
    return cores_given() if settings.count == "auto" else max(1, settings.count)


def share_port(bootstrap: ServerBootstrap, server: ServerSettings) -> None:
    """Rebuild the bootstrap's (not yet started) gRPC server with ``SO_REUSEPORT`` on.

    The shared bootstrap turns port reuse off so that a port clash fails loudly; the workers
    want exactly that reuse. Same options and error interceptor otherwise.
    """
    bootstrap.server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor()],
        options=[
            ("grpc.max_receive_message_length", server.max_message_bytes),
            ("grpc.max_send_message_length", server.max_message_bytes),
            ("grpc.so_reuseport", 1),
        ],
    )


def free_port(host: str) -> int:
    """A port free on ``host`` now (the workers bind it together right after)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def worker_path(path: Path, index: int) -> Path:
    """The per-worker variant of a state file."""
    return path.with_name(f"{path.name}.{index}")


class WorkerProcesses:
    """``process_*`` metrics of every worker, labelled by ``pid`` (the workers' own process
    collectors cannot be summed across processes: resident memory per process is what the
    memory alert watches)."""

    def __init__(self, pids: Callable[[], Sequence[int]], proc: Path = Path("/proc")) -> None:
        self._pids = pids
        self._proc = proc
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._ticks = os.sysconf("SC_CLK_TCK")

    def collect(self) -> Iterator[Metric]:
        """Resident memory, open file descriptors and CPU seconds of each live worker."""
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", labels=["pid"]
        )
        fds = GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", labels=["pid"]
        )
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time in seconds.", labels=["pid"]
        )
        for pid in self._pids():
            base = self._proc / str(pid)
            try:
                # After the command name (which may hold spaces): state is field 3 of stat.
                fields = (base / "stat").read_text().rpartition(")")[2].split()
                open_fds = len(os.listdir(base / "fd"))
            except OSError:
                continue  # the worker just exited
            label = [str(pid)]
            rss.add_metric(label, float(int(fields[21]) * self._page))
            fds.add_metric(label, float(open_fds))
            cpu.add_metric(label, (int(fields[11]) + int(fields[12])) / self._ticks)
        yield from (rss, fds, cpu)


def supervise(
    target: Callable[[int, int], None],
    count: int,
    settings: WorkerSettings,
    metrics_host: str,
    metrics_port: int | None,
    on_ready: Callable[[int | None], None] | None = None,
) -> int:
    """Run ``target(index, count)`` in ``count`` processes; serve their summed metrics.

    Returns the exit code: 0 after SIGTERM/SIGINT stopped every worker cleanly, 1 when a worker
    died on its own.
    """
    owned = settings.metrics_dir is None
    directory = Path(tempfile.mkdtemp(prefix="router-metrics-")) if owned else settings.metrics_dir
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    # The workers inherit the environment at spawn: that is how prometheus_client in each of
    # them learns to write its values to the shared directory.
    os.environ[MULTIPROC_ENV] = str(directory)
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = []
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    http_server = None
    code = 0
    try:
        for index in range(count):
            process = context.Process(target=target, args=(index, count), name=f"router-{index}")
            process.start()
            workers.append(process)
        bound: int | None = None
        if metrics_port is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
            registry.register(
                WorkerProcesses(lambda: [w.pid for w in workers if w.pid and w.is_alive()])
            )
            http_server, _ = start_http_server(metrics_port, addr=metrics_host, registry=registry)
            bound = int(http_server.server_port)
        _log.info("workers started", workers=count, pids=[w.pid for w in workers], metrics=bound)
        if on_ready is not None:
            on_ready(bound)
        while not stopping:
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                _log.error("a worker exited", pid=dead[0].pid, exitcode=dead[0].exitcode)
                code = 1
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.stop_seconds
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()
            if worker.pid is not None:
                mark_process_dead(worker.pid, str(directory))  # type: ignore[no-untyped-call]
        if http_server is not None:
            http_server.shutdown()
            http_server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.environ.pop(MULTIPROC_ENV, None)
        if owned:
            for leftover in directory.glob("*"):
                leftover.unlink(missing_ok=True)
            directory.rmdir()
    return code


def worker_settings(settings: RouterSettings, port: int, index: int) -> RouterSettings:
    """One worker's settings: the shared port, no metrics port of its own (the supervisor
    serves the sum), the health port on worker 0 only, its own start-tier file."""
    server = settings.server.model_copy(
        update={
            "port": port,
            "metrics_port": None,
            "health_port": settings.server.health_port if index == 0 else None,
        }
    )
    update: dict[str, object] = {"server": server}
    path = settings.start_tier.state_path
    if path is not None:
        update["start_tier"] = settings.start_tier.model_copy(
            update={"state_path": worker_path(path, index)}
        )
    state_dir = settings.quality.state_dir
    if state_dir is not None:
        # Each worker's quality loop judges its own requests and saves its own state.
        update["quality"] = settings.quality.model_copy(
            update={"state_dir": state_dir / f"worker-{index}"}
        )
    return settings.model_copy(update=update)


def run_worker(argv: Sequence[str], port: int, index: int, count: int) -> None:
    """A worker process: the same settings as the supervisor's (read again here from the same
    command line, so secrets never travel between processes), serving the shared port."""
    # Imported in the worker: the entry module imports this one (the spawned process must find
    # this function by its module's name, which ``__main__`` is not).
    import asyncio

    from router_svc.__main__ import load_settings, parse_args, serve
    from tierroute.logging import configure_logging

    settings = worker_settings(load_settings(parse_args(argv)), port, index)
    configure_logging(settings.logging)
    asyncio.run(serve(settings, reuse_port=True))
