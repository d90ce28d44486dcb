"""The fuzz targets, once per session: the router and two model services, as real processes.

Each model service is ``model_svc``'s own server (servicer, validation, interceptor, health)
over the scripted engine (``python -m model_svc.scripted_server``); the router is
``python -m router_svc`` with its ONNX classifier on (the tokenizer and the model see the odd
text too) and API keys required. Every case count is printed in the terminal summary and
written to ``$TIERROUTE_CACHE_DIR/fuzz/counts.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from _pytest.terminal import TerminalReporter

from router_svc.auth import hash_key
from tests.fuzz.oracle import Judge
from tests.fuzz.strategies import GOOD_KEY, PLAIN_KEY
from tierroute.launch import ServiceProcess, launch_module
from tierroute.paths import default_cache_dir

ROOT = Path(__file__).resolve().parents[2]
JUDGES = pytest.StashKey[dict[str, Judge]]()
SECONDS = pytest.StashKey[float]()


@dataclass
class FuzzStack:
    """The running services and a channel to each."""

    router: ServiceProcess
    small: ServiceProcess
    large: ServiceProcess
    router_channel: grpc.Channel
    model_channel: grpc.Channel
    logs: Path


def _router_config(path: Path, small: ServiceProcess, large: ServiceProcess) -> Path:
    unlimited = {"rate_per_second": 1e6, "burst": 1_000_000, "max_concurrent_streams": 64}
    config = {
        "logging": {"level": "INFO", "json_output": True},
        "tiers": [
            {
                "name": name,
                "endpoints": [tier.address],
                "input_usd_per_mtok": prices[0],
                "output_usd_per_mtok": prices[1],
                "timeout_seconds": 10,
            }
            for name, tier, prices in (("small", small, (0.1, 0.2)), ("large", large, (1, 2)))
        ],
        "resilience": {"health_check_interval_seconds": 1},
        "auth": {
            "enabled": True,
            "keys": [
                {
                    "tenant": "fuzz-all",
                    "sha256": hash_key(GOOD_KEY),
                    "permissions": {
                        "pin_tier": True,
                        "streaming": True,
                        "early_window": True,
                        "max_fallback_threshold": 1.0,
                    },
                    **unlimited,
                },
                {"tenant": "fuzz-plain", "sha256": hash_key(PLAIN_KEY), **unlimited},
            ],
        },
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzStack]:
    logs = tmp_path_factory.mktemp("fuzz")
    started: list[ServiceProcess] = []
    try:
        for tier, extra in (("small", ["--unsure", "hard"]), ("large", [])):
            started.append(
                ServiceProcess(
                    "model_svc.scripted_server",
                    ["--tier", tier, "--max-streams", "8", *extra],
                    cwd=ROOT,
                    log_path=logs / f"{tier}.log",
                )
            )
        small, large = started
        small.wait_until_serving(60)
        large.wait_until_serving(60)
        config = _router_config(logs / "router.json", small, large)
        router = launch_module(
            "router_svc",
            ["--config", str(config)],
            cwd=ROOT,
            log_path=logs / "router.log",
            timeout_seconds=60,
        )
        started.append(router)
        with (
            grpc.insecure_channel(router.address) as router_channel,
            grpc.insecure_channel(small.address) as model_channel,
        ):
            yield FuzzStack(router, small, large, router_channel, model_channel, logs)
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture(scope="module")
def judges(request: pytest.FixtureRequest) -> Iterator[dict[str, Judge]]:
    """Each RPC's judge, kept for the terminal summary with the fuzz tests' own run time."""
    found: dict[str, Judge] = {}
    request.config.stash[JUDGES] = found
    started = time.monotonic()
    yield found
    request.config.stash[SECONDS] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    """Print the cases tried per RPC, by status code, and record them as JSON."""
    found = config.stash.get(JUDGES, None)
    if not found:
        return
    seconds = config.stash.get(SECONDS, 0.0)
    total = sum(sum(j.counts.values()) for j in found.values())
    terminalreporter.section("fuzz cases")
    for rpc, judge in found.items():
        codes = ", ".join(f"{code} {n}" for code, n in judge.counts.most_common())
        terminalreporter.write_line(f"{rpc}: {sum(judge.counts.values())} ({codes})")
    terminalreporter.write_line(f"total: {total} cases in {seconds:.0f} s")
    out = default_cache_dir() / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "total": total,
        "seconds": round(seconds, 1),
        "rpcs": {rpc: dict(judge.counts) for rpc, judge in found.items()},
    }
    (out / "counts.json").write_text(json.dumps(summary, indent=2))
