"""All cores: ``python -m router_svc`` with two workers on one port, metrics that add up.

Two scripted tiers (``small`` unsure of prompts containing "hard"), the router with rules and
classifier off, two workers and the learned start tier on. Every request opens its own
connection, so the kernel's ``SO_REUSEPORT`` spreads them over the workers; each worker's
metric values are in its own file (named by its pid), and the supervisor's ``/metrics`` is
their sum.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.integration.router.scripted_chain import ServedTier, serve_tier
from tierroute.launch import ServiceProcess, launch_module
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
R = router_service_pb2
WORKERS = 2
REQUESTS = 40


@dataclass
class Pod:
    """The scripted tiers, the supervised router and its metric files."""

    tiers: dict[str, ServedTier]
    router: ServiceProcess
    metrics_dir: Path
    log: Path


def wait_for_workers(log: Path, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` workers logged that they serve (the supervisor's health check passes
    as soon as the first one does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if text.count('"event": "ready"') >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers ready:\n{text[-2000:]}")


@pytest.fixture(scope="module")
async def pod(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pod]:
    tiers = {
        "small": await serve_tier("small", frozenset({"hard"})),
        "large": await serve_tier("large", frozenset()),
    }
    logs = tmp_path_factory.mktemp("workers")
    metrics_dir = logs / "metrics"
    config = logs / "router.yaml"
    config.write_text(
        json.dumps(
            {
                "classifier": {"enabled": False},
                "rules": {"enabled": False},
                "workers": {"count": WORKERS, "metrics_dir": str(metrics_dir)},
                "start_tier": {"enabled": True, "exploration": 0.0, "refit_every": 5},
                "tiers": [
                    {
                        "name": name,
                        "endpoints": [tier.address],
                        "input_usd_per_mtok": price[0],
                        "output_usd_per_mtok": price[1],
                        "timeout_seconds": 10,
                    }
                    for (name, tier), price in zip(
                        tiers.items(), [(0.05, 0.1), (0.5, 1.5)], strict=True
                    )
                ],
                "resilience": {"retries": 0, "health_check_interval_seconds": 1},
            }
        )
    )
    log = logs / "router.log"
    router = await asyncio.to_thread(
        launch_module,
        "router_svc",
        ["--config", str(config)],
        cwd=ROOT,
        log_path=log,
        timeout_seconds=90,
    )
    try:
        await asyncio.to_thread(wait_for_workers, log, WORKERS)
        yield Pod(tiers, router, metrics_dir, log)
    finally:
        await asyncio.to_thread(router.stop)
        for tier in tiers.values():
            await tier.server.stop(None)


async def generate(address: str, text: str) -> list[R.RouterServiceGenerateResponse]:
    """One Generate call on its own connection."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        request = R.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(text=text))
        return [event async for event in stub.Generate(request, timeout=20)]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def total(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in an exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for _, value in pattern.findall(text))


def per_worker(metrics_dir: Path, name: str) -> Counter[int]:
    """Per worker pid, the sum of ``name``'s samples in its own metric file."""
    counts: Counter[int] = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            if json.loads(key)[1] == name:
                counts[pid] += value
    return counts


async def test_requests_spread_over_the_workers_and_metrics_sum(pod: Pod) -> None:
    texts = [("a hard one" if i % 2 else "an easy one") + f" #{i}" for i in range(REQUESTS)]
    answers = [await generate(pod.router.address, text) for text in texts]
    assert all(events[-1].HasField("finished") for events in answers)
    spread = per_worker(pod.metrics_dir, "tierroute_router_decisions_total")
    assert len(spread) == WORKERS, f"requests reached {dict(spread)}"
    assert all(count > 0 for count in spread.values())
    assert sum(spread.values()) == REQUESTS
    assert pod.router.metrics_port is not None
    text = await asyncio.to_thread(scrape, pod.router.metrics_port)
    assert total(text, "tierroute_router_decisions_total") == REQUESTS
    assert total(text, "tierroute_router_requests_total") == REQUESTS
    # Readings taken at scrape time in one process (tier health) reach the sum too: the
    # tier-down alert must not go blind under workers.
    healthy = re.findall(r'^tierroute_router_healthy_endpoints\{tier="(\w+)"\} (\S+)$', text, re.M)
    assert sorted(healthy) == [("large", "1.0"), ("small", "1.0")]
    # Each worker's own process metrics, by pid (what the memory alert watches).
    assert len(re.findall(r"^process_resident_memory_bytes\{pid=", text, re.MULTILINE)) == WORKERS
    # Each worker learns from its own requests; together they learned from all of them.
    trained = total(text, "tierroute_router_start_tier_training_outcomes")
    assert trained == REQUESTS
    assert total(text, "tierroute_router_start_tier_decisions_total") == REQUESTS
