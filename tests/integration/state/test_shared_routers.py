"""Two real router processes sharing one Redis, over scripted tiers: budgets, rates, faults.

50 concurrent callers spend one tenant's daily budget through both replicas. With the Redis
store the total charged stays within the budget plus one request's worst case; with the
in-process store (each replica counts alone) the same run is measured for comparison. The rate
limit holds across both replicas. Redis killed mid-run and restarted: the budgeted tenant is
refused with UNAVAILABLE while it is gone (fail closed), nothing hangs, and after recovery the
shared spend equals what the callers were charged. Figures are printed (``-s``) and written to
``shared_state.json`` in the test's directory.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from redis import Redis

from router_svc.auth import hash_key
from tests.integration.state.redis_server import RedisServer
from tierroute.launch import ServiceProcess, launch_module
from tierroute.v1 import common_pb2, router_service_pb2_grpc
from tierroute.v1 import router_service_pb2 as rpb

ROOT = Path(__file__).resolve().parents[3]
KEY = "tr-test-shared-5e1d"  # a test value, not a secret
RATE_KEY = "tr-test-shared-rate-0c7a"
AUTH = (("authorization", f"Bearer {KEY}"),)
PRICES = {"small": (1.0, 2.0), "large": (10.0, 20.0)}  # USD per 1M tokens
MAX_TOKENS = 16
PROMPT = "Tell me about Roman aqueducts."
CALLERS = 50
CALLER_SECONDS = 90.0
"""Longest a caller keeps trying (the budget is spent well before)."""
# One request's worst case, as the router reserves it: the prompt's byte bound plus the chat
# template's 16 tokens in, MAX_TOKENS out, on the small tier and on the large one it may reach.
PROMPT_BOUND = len(PROMPT.encode()) + 16
WORST_USD = sum((PROMPT_BOUND * i + MAX_TOKENS * o) / 1e6 for i, o in PRICES.values())
BUDGET_USD = 8 * WORST_USD


@dataclass
class Tiers:
    small: ServiceProcess
    large: ServiceProcess


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiers]:
    logs = tmp_path_factory.mktemp("tiers")
    started = []
    try:
        for tier in ("small", "large"):
            started.append(
                ServiceProcess(
                    "model_svc.scripted_server",
                    ["--tier", tier, "--tokens", "12", "--token-delay", "0.01"],
                    cwd=ROOT,
                    log_path=logs / f"{tier}.log",
                )
            )
        for process in started:
            process.wait_until_serving(60)
        yield Tiers(*started)
    finally:
        for process in started:
            process.stop()


def _config(path: Path, tiers: Tiers, state: dict[str, Any]) -> Path:
    config = {
        "logging": {"level": "INFO", "json_output": True},
        "classifier": {"enabled": False},
        "tiers": [
            {
                "name": name,
                "endpoints": [process.address],
                "input_usd_per_mtok": PRICES[name][0],
                "output_usd_per_mtok": PRICES[name][1],
                "timeout_seconds": 10,
            }
            for name, process in (("small", tiers.small), ("large", tiers.large))
        ],
        "resilience": {"health_check_interval_seconds": 1},
        "limits": {"max_tokens": MAX_TOKENS},
        "auth": {
            "enabled": True,
            "keys": [
                {
                    "tenant": "acme",
                    "sha256": hash_key(KEY),
                    "usd_per_day": BUDGET_USD,
                    "rate_per_second": 1e6,
                    "burst": 1_000_000,
                    "max_concurrent_streams": 256,
                },
                {
                    "tenant": "rated",
                    "sha256": hash_key(RATE_KEY),
                    "rate_per_second": 2,
                    "burst": 10,
                },
            ],
        },
        "state": state,
    }
    path.write_text(json.dumps(config))
    return path


@dataclass
class Replicas:
    routers: list[ServiceProcess]
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def stub(self, index: int) -> Any:
        channel = self.channels[index % len(self.channels)]
        return router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]

    def metric(self, index: int, name: str) -> float:
        port = self.routers[index].metrics_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not exported")

    def stop(self) -> None:
        for router in self.routers:
            router.stop()


def start_replicas(workdir: Path, tiers: Tiers, state: dict[str, Any]) -> Replicas:
    config = _config(workdir / "router.json", tiers, state)
    routers: list[ServiceProcess] = []
    try:
        for index in range(2):
            routers.append(
                launch_module(
                    "router_svc",
                    ["--config", str(config)],
                    cwd=ROOT,
                    log_path=workdir / f"router{index}.log",
                    timeout_seconds=90,
                )
            )
    except BaseException:
        for router in routers:
            router.stop()
        raise
    return Replicas(routers)


def _request() -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=PROMPT),
        sampling=common_pb2.SamplingParams(max_tokens=MAX_TOKENS),
    )


async def _call(stub: Any, timeout: float = 15.0) -> tuple[str, float]:
    """One Generate: its status (``HELD`` for a budget held by requests in flight, ``SPENT``
    for a budget used up) and the cost the caller was told."""
    try:
        events = [e async for e in stub.Generate(_request(), timeout=timeout, metadata=AUTH)]
    except grpc.aio.AioRpcError as exc:
        details = exc.details() or ""
        if "in flight" in details:
            return "HELD", 0.0
        if "resets at" in details:
            return "SPENT", 0.0
        return exc.code().name, 0.0
    return "OK", events[-1].finished.cost_usd


async def _spend_the_budget(replicas: Replicas) -> tuple[float, Counter[str]]:
    codes: Counter[str] = Counter()

    async def caller(index: int) -> float:
        # Like a client honouring RetryInfo: a held budget is retried, a spent one ends.
        # Attempts alternate between the replicas; the caller stops once both said "spent".
        spent = 0.0
        refusals = 0
        attempt = 0
        deadline = time.monotonic() + CALLER_SECONDS
        while refusals < 2 and time.monotonic() < deadline:
            code, cost = await _call(replicas.stub(index + attempt))
            attempt += 1
            codes[code] += 1
            spent += cost
            refusals = refusals + 1 if code == "SPENT" else 0
            if code == "HELD":
                await asyncio.sleep(0.1)
        return spent

    charged = await asyncio.gather(*(caller(i) for i in range(CALLERS)))
    return sum(charged), codes


async def _run(replicas: Replicas) -> tuple[float, Counter[str]]:
    replicas.channels = [grpc.aio.insecure_channel(r.address) for r in replicas.routers]
    try:
        return await _spend_the_budget(replicas)
    finally:
        for channel in replicas.channels:
            await channel.close()


def _record(workdir: Path, name: str, figures: dict[str, Any]) -> None:
    print(f"\n{name}: {json.dumps(figures)}")
    out = workdir / "shared_state.json"
    known = json.loads(out.read_text()) if out.exists() else {}
    known[name] = figures
    out.write_text(json.dumps(known, indent=2))


@pytest.mark.timeout(400)
async def test_fifty_callers_on_two_replicas_stay_within_budget_plus_one_worst_case(
    tiers: Tiers, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A generous operation timeout: this test is about atomicity, not a slow Redis.
    state = {"backend": "redis", "url": redis_server.url, "timeout_ms": 2000}
    replicas = start_replicas(tmp_path, tiers, state)
    try:
        charged, codes = await _run(replicas)
    finally:
        replicas.stop()
    client = Redis.from_url(redis_server.url)
    keys = [k for k in client.scan_iter("tierroute:{b:acme:*}") if not k.endswith(b":exp")]
    shared = sum(float(client.hget(k, "spent") or 0) for k in keys)
    client.close()
    figures = {
        "backend": "redis",
        "budget_usd": BUDGET_USD,
        "worst_case_usd": WORST_USD,
        "charged_usd": charged,
        "overshoot_usd": charged - BUDGET_USD,
        "overshoot_worst_cases": (charged - BUDGET_USD) / WORST_USD,
        "codes": dict(codes),
    }
    _record(tmp_path, "redis", figures)
    assert codes["OK"] > 0 and codes["SPENT"] > 0 and set(codes) <= {"OK", "HELD", "SPENT"}, codes
    assert shared == pytest.approx(charged, rel=1e-6)  # Redis holds what callers were told
    assert charged <= BUDGET_USD + WORST_USD + 1e-12
    assert charged >= BUDGET_USD  # refused once spent, not before


@pytest.mark.timeout(400)
async def test_the_in_process_store_lets_each_replica_spend_the_whole_budget(
    tiers: Tiers, tmp_path: Path
) -> None:
    replicas = start_replicas(tmp_path, tiers, {"backend": "memory"})
    try:
        charged, codes = await _run(replicas)
    finally:
        replicas.stop()
    figures = {
        "backend": "memory",
        "budget_usd": BUDGET_USD,
        "worst_case_usd": WORST_USD,
        "charged_usd": charged,
        "overshoot_usd": charged - BUDGET_USD,
        "overshoot_worst_cases": (charged - BUDGET_USD) / WORST_USD,
        "codes": dict(codes),
    }
    _record(tmp_path, "memory", figures)
    # Each replica admits against its own count: together they pass the budget.
    assert charged > BUDGET_USD + WORST_USD
    assert charged <= 2 * (BUDGET_USD + WORST_USD) + 1e-12


@pytest.mark.timeout(400)
async def test_the_rate_limit_holds_across_replicas(
    tiers: Tiers, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A generous timeout: a spuriously slow Redis would hand each replica its own bucket.
    state = {"backend": "redis", "url": redis_server.url, "timeout_ms": 2000}
    replicas = start_replicas(tmp_path, tiers, state)
    replicas.channels = [grpc.aio.insecure_channel(r.address) for r in replicas.routers]
    try:
        codes: Counter[str] = Counter()
        started = time.monotonic()
        for index in range(40):
            try:
                await replicas.stub(index).Route(
                    rpb.RouteRequest(prompt=common_pb2.Prompt(text=PROMPT)),
                    timeout=5,
                    metadata=(("authorization", f"Bearer {RATE_KEY}"),),
                )
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1
        elapsed = time.monotonic() - started
    finally:
        for channel in replicas.channels:
            await channel.close()
        replicas.stop()
    _record(tmp_path, "rate", {"admitted": codes["OK"], "seconds": elapsed, "codes": dict(codes)})
    # One bucket for both: burst 10 plus 2/s refill, not 10 per replica.
    assert codes["OK"] <= 10 + 2 * elapsed + 1
    assert codes["RESOURCE_EXHAUSTED"] > 0


@pytest.mark.timeout(400)
async def test_redis_killed_mid_run_refuses_budgets_then_recovers_without_lost_accounting(
    tiers: Tiers, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path, durable=True)
    state = {
        "backend": "redis",
        "url": server.url,
        # Long enough that a loaded machine does not fake an outage; a killed Redis refuses
        # connections at once anyway.
        "timeout_ms": 500,
        "probe_interval_seconds": 0.5,
    }
    replicas = start_replicas(tmp_path, tiers, state)
    replicas.channels = [grpc.aio.insecure_channel(r.address) for r in replicas.routers]
    codes: Counter[str] = Counter()
    charged = 0.0
    slowest = 0.0

    async def caller(index: int, until: float) -> None:
        nonlocal charged, slowest
        attempt = 0
        while time.monotonic() < until:
            began = time.monotonic()
            code, cost = await _call(replicas.stub(index + attempt), timeout=10)
            slowest = max(slowest, time.monotonic() - began)
            codes[code] += 1
            charged += cost
            attempt += 1
            await asyncio.sleep(0.05)

    try:
        until = time.monotonic() + 6
        callers = asyncio.gather(*(caller(i, until) for i in range(10)))
        await asyncio.sleep(1.5)
        server.kill()
        killed = Counter(codes)
        await asyncio.sleep(2.0)
        during = Counter(codes) - killed
        server.start()
        await callers
        after = await asyncio.gather(*(_call(replicas.stub(i)) for i in range(4)))
        for code, cost in after:
            codes[code] += 1
            charged += cost
        await asyncio.sleep(1.0)  # replays run in the background after the first success
        pending = [replicas.metric(i, "tierroute_router_state_pending_operations") for i in (0, 1)]
        degraded = [
            replicas.metric(i, 'tierroute_router_state_degraded{backend="redis"}') for i in (0, 1)
        ]
    finally:
        for channel in replicas.channels:
            await channel.close()
        replicas.stop()
    client = Redis.from_url(server.url)
    keys = [k for k in client.scan_iter("tierroute:{b:acme:*}") if not k.endswith(b":exp")]
    shared = sum(float(client.hget(k, "spent") or 0) for k in keys)
    client.close()
    server.stop()
    _record(
        tmp_path,
        "redis_killed",
        {
            "codes": dict(codes),
            "during_outage": dict(during),
            "slowest_call_seconds": slowest,
            "charged_usd": charged,
            "redis_spent_usd": shared,
        },
    )
    assert set(codes) <= {"OK", "HELD", "SPENT", "UNAVAILABLE"}, codes  # no hang, no error
    assert during["UNAVAILABLE"] > 0  # fail closed while Redis was gone
    assert all(code == "OK" for code, _ in after)  # served again after the restart
    assert slowest < 5.0
    assert pending == [0.0, 0.0] and degraded == [0.0, 0.0]
    assert shared == pytest.approx(charged, rel=1e-6)  # every charge reached Redis, once
