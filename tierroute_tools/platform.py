"""The local platform: model services for the embedded tiers and a router, on loopback.

``LocalPlatform`` starts one ``model_svc`` process per tier (each vLLM-CPU engine bound to its
own core, so two engines do not fight over the same one), reads each tier's prices from its
``GetModelInfo``, writes the router's configuration from them, and starts ``router_svc`` (and
optionally the OpenAI-compatible HTTP endpoint). Leaving the context stops every process it
started, router first, so no request is cut by a tier going away under it. Inside the context
(entered on the main thread) SIGTERM ends the owner like Ctrl-C does, so every command that
starts a platform (``tierroute up``, ``tierroute eval live``, ...) stops it on either signal;
if the owner is killed outright, its children get the parent-death signal
(:mod:`tierroute.launch`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import yaml

from tierroute.launch import LaunchError, ServiceProcess, free_port
from tierroute.paths import default_cache_dir
from tierroute.v1 import model_service_pb2, model_service_pb2_grpc

LOCAL_CLASSIFIER_BUDGET_MS = 100.0


@dataclass(frozen=True)
class TierSpec:
    """One embedded tier to start: its name, the CPU core its engine is bound to, its model."""

    name: str
    cpu_bind: str
    model: str | None = None
    """Key of the prepared model in :data:`tierroute.catalog.CATALOG`; ``None``: the
    model service's own default for the tier's name."""
    prices: tuple[float, float] | None = None
    """USD per 1M input and output tokens; ``None``: the model service's seed price."""
    module: str = "model_svc"
    """Module the tier's process runs (tests: ``model_svc.scripted_server``)."""
    args: tuple[str, ...] = ()
    """Extra arguments of that module."""

    def env(self, cache_dir: Path) -> dict[str, str]:
        """Environment of this tier's ``model_svc`` process."""
        from tierroute.catalog import CATALOG
        from tierroute_tools.modelprep.paths import models_dir

        env = {"TIERROUTE_ENGINE__CPU_THREADS_BIND": self.cpu_bind}
        if self.model is not None:
            env["TIERROUTE_ENGINE__MODEL"] = str(models_dir(cache_dir) / CATALOG[self.model].folder)
        if self.prices is not None:
            env["TIERROUTE_PRICES__INPUT_USD_PER_MTOK"] = repr(self.prices[0])
            env["TIERROUTE_PRICES__OUTPUT_USD_PER_MTOK"] = repr(self.prices[1])
        return env


PARAMETER_PRICED_LARGE = (0.50, 1.50)
"""Prices of the 1.5B tier of the ``code3`` preset; the others scale with parameter count."""


def _parameter_priced(parameters_m: float) -> tuple[float, float]:
    scale = parameters_m / 1544.0  # Qwen2.5-Coder-1.5B's parameters (millions)
    return (
        round(PARAMETER_PRICED_LARGE[0] * scale, 4),
        round(PARAMETER_PRICED_LARGE[1] * scale, 4),
    )


PRESETS: Mapping[str, tuple[TierSpec, ...]] = {
    # The default: SmolLM2-135M small, Qwen2.5-Coder-0.5B large (the models' seed prices).
    "pair": (TierSpec("small", "0"), TierSpec("large", "1")),
    # Three tiers for code: SmolLM2-135M, Qwen2.5-Coder-0.5B and -1.5B. Prices scale with the
    # parameter count (compute per token), anchored at the large tier's $0.50/$1.50.
    "code3": (
        TierSpec("tiny", "0", model="small", prices=_parameter_priced(135.0)),
        TierSpec("small", "0", model="large", prices=_parameter_priced(494.0)),
        TierSpec("large", "1", model="xl", prices=PARAMETER_PRICED_LARGE),
    ),
}
"""Named tier sets of the local platform, cheapest tier first (the escalation chain)."""


CODE3_FALLBACK_THRESHOLD = 0.85
"""Escalation threshold of the ``code3`` preset (see :func:`preset_router_overrides`)."""


def merge_sections(
    base: Mapping[str, object], overrides: Mapping[str, object]
) -> dict[str, object]:
    """``overrides`` over ``base``, section by section: an override of one field of a section
    (a mapping) keeps the section's other fields; anything else replaces the value. A new dict;
    neither input changes."""
    merged = dict(base)
    for key, value in overrides.items():
        section = merged.get(key)
        if isinstance(section, Mapping) and isinstance(value, Mapping):
            merged[key] = {**section, **value}
        else:
            merged[key] = value
    return merged


def preset_models(name: str) -> tuple[str, ...]:
    """Catalog keys of the models the preset ``name`` serves (what ``models prepare`` needs)."""
    return tuple(tier.model or tier.name for tier in PRESETS[name])


def preset_router_overrides(name: str) -> dict[str, object]:
    """Router settings the preset ``name`` needs beyond the local defaults (a fresh dict)."""
    if name == "code3":
        # The rules and the classifier were made for a pair whose small tier cannot write code:
        # they send every coding prompt straight to the last tier, which would leave the chain
        # nothing to do. Here every request starts on the cheapest tier and the tiers' own
        # confidence moves it up, one tier at a time.
        # The confidence calibration is shared, not fitted per model, and squeezes every tier
        # into a narrow band on code: on the demo's mix SmolLM2 scored 0.68-0.85 (wrong on
        # nearly every task), Qwen-Coder-0.5B 0.83-0.90 and -1.5B 0.84-0.90. At the default
        # 0.65 nothing would ever leave the tiny tier; 0.85 sits between the two small models.
        return {
            "rules": {"enabled": False},
            "classifier": {"enabled": False},
            "policy": {"fallback_threshold": CODE3_FALLBACK_THRESHOLD},
        }
    return {}


def demo_quality_overrides(state_dir: Path) -> dict[str, object]:
    """Router settings that run the quality loop for the demo: every cheaper-served answer is
    replayed on the largest tier and judged (a demo has a handful of queries, so sampling less
    would judge none), its state kept in ``state_dir`` across runs. A demo is far too short to
    certify a threshold, so it starts at the policy's threshold (``warmup: start``) instead of
    escalating everything until certified, the production default."""
    return {
        "quality": {
            "enabled": True,
            "warmup": "start",
            "state_dir": str(state_dir),
            "initial_rate": 1.0,
            "floor_rate": 1.0,
            "escalated_rate": 1.0,
            "report_interval_seconds": 5,
        },
        # Answers with a number or a code block are compared; prose goes to the largest tier's
        # yes/no (the judges' default fallback).
        "judges": {"default": "agreement"},
    }


@dataclass
class PlatformOptions:
    """What :class:`LocalPlatform` starts and where it writes its logs and configuration."""

    run_dir: Path
    tiers: Sequence[TierSpec] = PRESETS["pair"]
    router_port: int = 0
    http_port: int | None = None
    start_timeout_seconds: float = 600.0
    router_overrides: dict[str, object] = field(default_factory=dict)


class LocalPlatform:
    """Context manager owning the processes of a local tierroute platform."""

    def __init__(self, options: PlatformOptions) -> None:
        self._options = options
        self.tiers: dict[str, ServiceProcess] = {}
        self.prices: dict[str, tuple[float, float]] = {}
        self.router: ServiceProcess | None = None
        self.http: ServiceProcess | None = None
        self.http_url: str | None = None
        self._previous_sigterm: Any = None

    @property
    def router_address(self) -> str:
        """``host:port`` of the router."""
        if self.router is None:
            raise LaunchError("the router is not running")
        return self.router.address

    def start(self, log: Callable[[str], None] = print) -> None:
        """Start tiers (in parallel), then the router, then the HTTP endpoint; raise on failure."""
        run_dir = self._options.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for tier in self._options.tiers:
            log(f"starting model service for tier {tier.name!r} (engine on core {tier.cpu_bind})")
            self.tiers[tier.name] = ServiceProcess(
                tier.module,
                ["--tier", tier.name, *tier.args],
                env=tier.env(default_cache_dir()),
                log_path=run_dir / f"model-{tier.name}.log",
            )
        for name, process in self.tiers.items():
            process.wait_until_serving(self._options.start_timeout_seconds)
            self.prices[name] = _prices(process.address)
            waited = time.monotonic() - started
            log(f"tier {name!r} serving on {process.address} after {waited:.0f} s")
        config = run_dir / "router.yaml"
        config.write_text(yaml.safe_dump(self._router_config(), sort_keys=False))
        self.router = ServiceProcess(
            "router_svc",
            ["--config", str(config)],
            port=self._options.router_port or None,
            log_path=run_dir / "router.log",
        )
        self.router.wait_until_serving(120.0)
        log(f"router serving on {self.router.address} (metrics on port {self.router.metrics_port})")
        if self._options.http_port is not None:
            self._start_http(log)

    def _router_config(self) -> dict[str, object]:
        tiers = [
            {
                "name": name,
                "endpoints": [process.address],
                "input_usd_per_mtok": self.prices[name][0],
                "output_usd_per_mtok": self.prices[name][1],
                "timeout_seconds": 300,
            }
            for name, process in self.tiers.items()
        ]
        config: dict[str, object] = {
            "server": {"host": "127.0.0.1", "grace_seconds": 10},
            "tiers": tiers,
            # Both cores run engines here, so the classifier waits for CPU; a production router
            # has its own cores and keeps the 8 ms default budget.
            "policy": {"classifier_timeout_ms": LOCAL_CLASSIFIER_BUDGET_MS},
        }
        return merge_sections(config, self._options.router_overrides)

    def _start_http(self, log: Callable[[str], None]) -> None:
        port = self._options.http_port or free_port()
        self.http = ServiceProcess(
            "openai_gateway",
            ["--router", self.router_address, "--host", "127.0.0.1"],
            port=port,
            metrics_port=-1,
            log_path=self._options.run_dir / "openai.log",
        )
        self.http_url = f"http://127.0.0.1:{port}"
        _wait_http(self.http, f"{self.http_url}/v1/models", 60.0)
        log(f"OpenAI-compatible endpoint on {self.http_url}")

    def stop(self) -> None:
        """Stop the HTTP endpoint, the router, then the tiers."""
        for process in (self.http, self.router, *self.tiers.values()):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            # SIGTERM's default action ends the process without unwinding, which would skip
            # __exit__ and leave every service running with no owner.
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._previous_sigterm is not None:
            # Restored first: a second SIGTERM must not interrupt the stop half-way (it ends
            # the owner, and the children then get their parent-death signal).
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so the platform's context stops its processes."""
    raise KeyboardInterrupt(f"signal {signum}")


def _prices(address: str) -> tuple[float, float]:
    with grpc.insecure_channel(address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        info = stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=10)
    return float(info.input_usd_per_mtok), float(info.output_usd_per_mtok)


def _wait_http(process: ServiceProcess, url: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise LaunchError("the HTTP endpoint exited: " + "\n".join(process.output_tail()[-10:]))
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 401 without a key): it is up
        except OSError:
            time.sleep(0.2)
    raise LaunchError(f"the HTTP endpoint did not answer on {url} in {timeout_seconds:.0f} s")
