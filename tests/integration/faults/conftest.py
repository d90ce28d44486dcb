"""Fixtures of the fault tests: scripted model services and routers as real processes.

Every process is a real ``python -m`` child on loopback (:mod:`tierroute.launch`): model
services run ``python -m model_svc.scripted_server`` (the real server over a scripted engine),
routers run ``python -m router_svc`` with the classifier and rules off (every request starts on the
cheapest tier) and short resilience timings, so each scenario takes seconds. A test kills and
restarts these processes; :class:`Launcher` stops whatever is left at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.faults.helpers import CLIENT_OPTIONS, scrape
from tierroute.launch import ServiceProcess
from tierroute.paths import default_cache_dir
from tierroute.v1 import router_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
MODEL_MODULE = "model_svc.scripted_server"
PRICES = {"small": (0.05, 0.10), "large": (0.50, 1.50)}
START_SECONDS = 30
# Short timings so that each scenario settles in about a second.
RESILIENCE = {
    "retries": 1,
    "backoff_initial_seconds": 0.02,
    "backoff_max_seconds": 0.1,
    "circuit_failure_threshold": 2,
    "circuit_reset_seconds": 1.0,
    "health_check_interval_seconds": 0.5,
    "health_check_timeout_seconds": 0.5,
}
ROUTER_GRACE_SECONDS = 1.0


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Service:
    """A child service started from the repository root, restartable on the same ports."""

    process: ServiceProcess

    def __init__(self, logs: Path, name: str, module: str, args: Sequence[str]) -> None:
        self.name = name
        self._module = module
        self._args = list(args)
        self._log = logs / f"{name}.log"

    def start(self) -> None:
        """Spawn the process without waiting, so that several can boot side by side."""
        self.process = self._spawn(port=None, metrics_port=None)

    def _spawn(self, port: int | None, metrics_port: int | None) -> ServiceProcess:
        return ServiceProcess(
            self._module,
            self._args,
            cwd=ROOT,
            log_path=self._log,
            port=port,
            metrics_port=metrics_port,
        )

    def wait_until_serving(self) -> None:
        """Until its health says SERVING (fails with its output if it does not)."""
        self.process.wait_until_serving(START_SECONDS)

    def restart(self) -> None:
        """Start again on the same gRPC and metrics ports (after it ended) and wait."""
        self.process = self._spawn(self.process.port, self.process.metrics_port)
        self.wait_until_serving()

    @property
    def address(self) -> str:
        """``host:port`` of its gRPC server."""
        return self.process.address

    @property
    def metrics_port(self) -> int | None:
        """Port of its ``/metrics``."""
        return self.process.metrics_port


class ModelProcess(_Service):
    """One scripted model service; killed and restarted on the same ports by the tests."""

    def __init__(self, logs: Path, name: str, tier: str, args: Sequence[str]) -> None:
        self.tier = tier
        self.events_path = logs / f"{name}.events"
        super().__init__(
            logs, name, MODEL_MODULE, ["--tier", tier, "--events", str(self.events_path), *args]
        )

    def kill(self) -> None:
        """SIGKILL the process group, as a crashed pod or an OOM kill would end it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.stop()

    def events(self) -> list[str]:
        """Kinds of engine events so far (``start``, ``finish``, ``abort``), in order."""
        if not self.events_path.exists():
            return []
        return [line.split()[0] for line in self.events_path.read_text().splitlines() if line]

    def gauge(self, name: str) -> float | None:
        """A ``tierroute_model_*`` gauge of this tier."""
        return scrape(self.metrics_port, f'tierroute_model_{name}{{tier="{self.tier}"}}')

    def idle(self) -> bool:
        """No stream open and no request left in the engine."""
        return self.gauge("active_streams") == 0 and self.gauge("engine_unfinished_requests") == 0


class RouterProcess(_Service):
    """``python -m router_svc`` over a generated config; restartable on the same ports."""

    def __init__(self, logs: Path, name: str, config: dict[str, Any]) -> None:
        self.config_path = logs / f"{name}.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        super().__init__(logs, name, "router_svc", ["--config", str(self.config_path)])

    def metric(self, sample: str) -> float | None:
        """One ``tierroute_router_*`` sample, labels included."""
        return scrape(self.metrics_port, f"tierroute_router_{sample}")


@dataclass
class Pair:
    """A small tier, the large tier, and a router over both (see :meth:`Launcher.pair`)."""

    small: ModelProcess
    large: ModelProcess
    router: RouterProcess


class Launcher:
    """Starts model services and routers for a test module and stops them all at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._models: list[ModelProcess] = []
        self._routers: list[RouterProcess] = []
        self._waiting: list[ModelProcess] = []
        self._pending: list[RouterProcess] = []

    def model(
        self,
        name: str,
        tier: str = "small",
        *,
        tokens: int = 6,
        token_delay: float = 0.005,
        first_token_delay: float = 0.0,
        unsure: Sequence[str] = (),
        die_after: int | None = None,
        max_streams: int = 32,
    ) -> ModelProcess:
        """Start a scripted model service (knobs: :class:`model_svc.engines.scripted.Script`);
        :meth:`ready` waits for it."""
        args = [
            "--tokens",
            str(tokens),
            "--token-delay",
            str(token_delay),
            "--first-token-delay",
            str(first_token_delay),
            "--max-streams",
            str(max_streams),
            # Engine health checks often, so a scenario sees a change within a fraction of a second.
            "--health-interval",
            "0.2",
        ]
        for word in unsure:
            args += ["--unsure", word]
        if die_after is not None:
            args += ["--die-after", str(die_after)]
        model = ModelProcess(self.logs, name, tier, args)
        model.start()
        self._models.append(model)
        self._waiting.append(model)
        return model

    def router(
        self, name: str, tiers: Mapping[str, Sequence[str]], **overrides: Any
    ) -> RouterProcess:
        """A router over ``tiers`` (name → endpoints, cheapest first); :meth:`ready` starts it
        once its tiers serve."""
        config: dict[str, Any] = {
            "classifier": {"enabled": False},
            "rules": {"enabled": False},
            "server": {"grace_seconds": ROUTER_GRACE_SECONDS},
            "tiers": [
                {
                    "name": tier,
                    "endpoints": list(endpoints),
                    "input_usd_per_mtok": PRICES[tier][0],
                    "output_usd_per_mtok": PRICES[tier][1],
                    "timeout_seconds": 30,
                }
                for tier, endpoints in tiers.items()
            ],
            "resilience": RESILIENCE,
        }
        router = RouterProcess(self.logs, name, _merge(config, overrides))
        self._pending.append(router)
        return router

    def pair(self, name: str, **small: Any) -> Pair:
        """``{name}-small`` (with the :meth:`model` knobs in ``small``), ``{name}-large`` and
        ``router-{name}`` over both, all serving."""
        small_tier = self.model(f"{name}-small", **small)
        large_tier = self.model(f"{name}-large", "large")
        tiers = {"small": [small_tier.address], "large": [large_tier.address]}
        router = self.router(f"router-{name}", tiers)
        self.ready()
        return Pair(small_tier, large_tier, router)

    def ready(self) -> None:
        """Wait until the model services started since the last call are SERVING, then start
        the new routers and wait for them: a router that started before its tiers would
        count them down until its next health check, as it should, but tests want a settled
        start."""
        waiting, self._waiting = self._waiting, []
        for model in waiting:
            model.wait_until_serving()
        pending, self._pending = self._pending, []
        for router in pending:
            router.start()
            self._routers.append(router)
        for router in pending:
            router.wait_until_serving()

    def close(self) -> None:
        """Stop every process still running: all are signalled first, then reaped."""
        processes = [r.process for r in self._routers] + [m.process for m in self._models]
        for process in processes:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGTERM)
        for process in processes:
            process.stop(grace_seconds=3)


class Outcomes:
    """What each scenario observed in this run, written as a Markdown table at the end
    (``$TIERROUTE_CACHE_DIR/faults/outcomes.md``) for the reliability documentation."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def record(self, scenario: str, outcome: str) -> None:
        """One row: the scenario and what the caller saw (codes, times)."""
        self.rows.append((scenario, outcome))

    def write(self, path: Path) -> None:
        """The table, one row per recorded scenario."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["| Scenario | Outcome observed |", "|---|---|"]
        lines += [f"| {scenario} | {outcome} |" for scenario, outcome in self.rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def outcomes() -> Iterator[Outcomes]:
    """Collects the scenarios' outcomes; the table is written when the session ends."""
    table = Outcomes()
    yield table
    if table.rows:
        table.write(default_cache_dir() / "faults" / "outcomes.md")


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """A launcher whose processes live as long as the test module."""
    running = Launcher(tmp_path_factory.mktemp("faults"))
    try:
        yield running
    finally:
        running.close()


@contextlib.asynccontextmanager
async def router_stub(address: str) -> AsyncIterator[router_service_pb2_grpc.RouterServiceStub]:
    """A RouterService stub on its own channel (closed on exit)."""
    async with grpc.aio.insecure_channel(address, options=CLIENT_OPTIONS) as channel:
        yield router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]


async def serving(address: str) -> bool:
    """Whether the process at ``address`` answers ``grpc.health.v1`` with SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
