"""The Redis state backend against a real redis-server: atomic budgets, shared limits, faults.

Two :class:`RedisState` objects on separate connection pools stand for two router replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from router_svc.ledger import BudgetExhaustedError
from router_svc.state.factory import open_state, redis_client
from router_svc.state.memory import InProcessState
from router_svc.state.metrics import StateMetrics
from router_svc.state.redis_store import RedisState
from router_svc.state.resilient import BudgetUnavailableError, ResilientState
from router_svc.state.settings import BudgetFailMode, StateBackend, StateSettings
from router_svc.state.store import BudgetHeldError, StateUnavailableError
from tests.integration.state.redis_server import RedisServer

BUDGET = 1.0
WORST = 0.1


def settings(server: RedisServer, **extra: object) -> StateSettings:
    return StateSettings.model_validate(
        {"backend": "redis", "url": server.url, "timeout_ms": 2000, **extra}
    )


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[RedisState, RedisState]]:
    config = settings(redis_server)
    pair = (
        RedisState(redis_client(config), timeout_seconds=2.0),
        RedisState(redis_client(config), timeout_seconds=2.0),
    )
    yield pair
    for state in pair:
        await state.close()


async def until_replayed(state: ResilientState) -> None:
    """Probe Redis until the state recovered and its queue is replayed (at most 5 s)."""
    for _ in range(250):
        await state.take("probe", 1000.0, 1000)  # an operation that probes Redis
        if not state.degraded and state.pending == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not recovered: degraded={state.degraded} pending={state.pending}")


async def _request(state: RedisState, actual: float) -> float:
    """Reserve the worst case, 'run', settle to ``actual``; returns what was charged."""
    while True:
        try:
            reservation = await state.reserve("acme", BUDGET, WORST)
            break
        except BudgetHeldError:
            await asyncio.sleep(0.005)  # held by requests in flight: retry, as RetryInfo says
        except BudgetExhaustedError:
            return 0.0
    await asyncio.sleep(0.01)
    await state.settle(reservation, actual)
    return actual


async def test_concurrent_requests_on_two_replicas_overshoot_by_at_most_one_worst_case(
    replicas: tuple[RedisState, RedisState],
) -> None:
    a, b = replicas
    charged = await asyncio.gather(*(_request((a, b)[i % 2], WORST) for i in range(50)))
    total = await a.spent("acme")
    assert total == pytest.approx(sum(charged))
    # Admission needs spend + held < budget: at most one worst case over the budget.
    assert BUDGET - 1e-9 <= total <= BUDGET + WORST + 1e-9
    assert await a.held("acme") == 0.0
    with pytest.raises(BudgetExhaustedError, match="daily budget"):
        await b.check_budget("acme", BUDGET)


async def test_a_settlement_is_applied_once_and_expired_reservations_free_the_budget(
    redis_server: RedisServer,
) -> None:
    state = RedisState(redis_client(settings(redis_server)), reservation_ttl_seconds=0.2)
    try:
        first = await state.reserve("acme", BUDGET, BUDGET)  # holds the whole budget
        with pytest.raises(BudgetHeldError, match="in flight"):
            await state.reserve("acme", BUDGET, WORST)
        await state.settle(first, 0.25)
        await state.settle(first, 0.25)  # a replayed settlement: no second charge
        assert await state.spent("acme") == pytest.approx(0.25)
        lost = await state.reserve("acme", BUDGET, 0.75)  # its replica "dies": never settled
        with pytest.raises(BudgetHeldError):
            await state.check_budget("acme", BUDGET)
        await asyncio.sleep(0.3)
        await state.check_budget("acme", BUDGET)  # the lost reservation expired
        assert lost.day
    finally:
        await state.close()


async def test_rate_and_stream_limits_are_shared_by_replicas(
    replicas: tuple[RedisState, RedisState],
) -> None:
    a, b = replicas
    waits = [await (a, b)[i % 2].take("acme", 1.0, 4) for i in range(6)]
    assert waits[:4] == [0.0] * 4 and all(w > 0 for w in waits[4:])  # one bucket for both
    first, count = await a.open_stream("acme", 2)
    second, count = await b.open_stream("acme", 2)
    assert first is not None and second is not None and count == 2
    refused, count = await a.open_stream("acme", 2)
    assert refused is None and count == 2
    await b.close_stream(first)
    await b.close_stream(first)  # idempotent
    assert await a.open_streams("acme") == 1


async def test_redis_down_fails_budgets_closed_quickly_and_recovers_without_double_charge(
    redis_server: RedisServer,
) -> None:
    config = settings(redis_server, timeout_ms=300, probe_interval_seconds=0.2)
    state = open_state(config, CollectorRegistry())
    assert isinstance(state, ResilientState)
    before = await state.reserve("acme", BUDGET, WORST)
    redis_server.kill()
    started = time.monotonic()
    with pytest.raises(BudgetUnavailableError, match="budget_fail: closed"):
        await state.reserve("acme", BUDGET, WORST)
    assert time.monotonic() - started < 1.5  # bounded by the timeout, no hang
    assert state.degraded
    # Rate limits and streams go on with this replica's own counts.
    assert await state.take("acme", 10.0, 5) == 0.0
    slot, _ = await state.open_stream("acme", 2)
    assert slot is not None and slot.backend == "memory"
    await state.settle(before, 0.05)  # cannot reach Redis: queued
    assert state.pending == 1
    redis_server.start()  # empty: the crash lost the day's spend
    await until_replayed(state)
    assert await state.spent("acme") == pytest.approx(0.05)
    await state.replay()  # nothing left: a second replay charges nothing
    await state.settle(before, 0.05)  # nor does the same settlement again
    assert await state.spent("acme") == pytest.approx(0.05)
    await state.close()


async def test_fail_open_admits_locally_and_pushes_the_cost_on_recovery(
    redis_server: RedisServer,
) -> None:
    config = settings(
        redis_server, timeout_ms=300, probe_interval_seconds=0.2, budget_fail=BudgetFailMode.OPEN
    )
    registry = CollectorRegistry()
    remote = RedisState(redis_client(config), timeout_seconds=0.3)
    state = ResilientState(remote, InProcessState(), config, StateMetrics(registry, "redis"))
    redis_server.kill()
    reservation = await state.reserve("acme", BUDGET, WORST)
    assert reservation.backend == "memory"
    assert registry.get_sample_value("tierroute_router_state_degraded", {"backend": "redis"}) == 1
    await state.settle(reservation, 0.07)
    redis_server.start()
    await until_replayed(state)
    assert await remote.spent("acme") == pytest.approx(0.07)
    assert registry.get_sample_value("tierroute_router_state_degraded", {"backend": "redis"}) == 0
    assert (registry.get_sample_value("tierroute_router_state_replayed_total") or 0) >= 1
    await state.close()


async def test_an_unreachable_redis_raises_within_the_timeout() -> None:
    config = StateSettings(backend=StateBackend.REDIS, url="redis://127.0.0.1:1/0", timeout_ms=50)
    state = RedisState(redis_client(config), timeout_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(StateUnavailableError):
        await state.take("acme", 1.0, 1)
    assert time.monotonic() - started < 1.0
    await state.close()
