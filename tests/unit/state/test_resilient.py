"""The resilient state store's decisions, with a scripted fake Redis and a fake clock.

A down Redis is skipped until the probe interval passed (requests do not each wait for the
timeout); budgets fail closed or open by configuration; what could not reach Redis is replayed
once, in order, when it answers again; the queue is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from router_svc.state.memory import InProcessState
from router_svc.state.metrics import StateMetrics
from router_svc.state.resilient import BudgetUnavailableError, ResilientState
from router_svc.state.settings import BudgetFailMode, StateSettings
from router_svc.state.store import Reservation, StateUnavailableError, StreamSlot


class FakeRedis:
    """Answers like RedisState, or raises StateUnavailableError while ``down``."""

    name = "redis"

    def __init__(self) -> None:
        self.down = False
        self.calls: list[str] = []
        self.settled: list[tuple[str, float]] = []
        self.closed: list[str] = []

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise StateUnavailableError("connection refused")

    def ticket(self, tenant: str) -> Reservation:
        return Reservation(tenant, "2026-12-07", 0.0, self.name)

    async def check_budget(self, tenant: str, budget_usd: float) -> None:
        self._call("check_budget")

    async def reserve(self, tenant: str, budget_usd: float, amount_usd: float) -> Reservation:
        self._call("reserve")
        return Reservation(tenant, "2026-12-07", amount_usd, self.name)

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        self._call("settle")
        self.settled.append((reservation.id, cost_usd))

    async def spent(self, tenant: str) -> float:
        self._call("spent")
        return sum(cost for _, cost in self.settled)

    async def take(self, tenant: str, rate: float, burst: int) -> float:
        self._call("take")
        return 0.0

    async def open_stream(self, tenant: str, limit: int) -> tuple[StreamSlot | None, int]:
        self._call("open_stream")
        return StreamSlot(tenant, self.name), 1

    async def close_stream(self, slot: StreamSlot) -> None:
        self._call("close_stream")
        self.closed.append(slot.id)

    async def open_streams(self, tenant: str) -> int:
        self._call("open_streams")
        return 0

    async def close(self) -> None:
        self.calls.append("close")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(**settings: Any) -> tuple[ResilientState, FakeRedis, Clock, CollectorRegistry]:
    fake, clock, registry = FakeRedis(), Clock(), CollectorRegistry()
    config = StateSettings.model_validate({"backend": "redis", **settings})
    state = ResilientState(
        fake,  # type: ignore[arg-type]
        InProcessState(),
        config,
        StateMetrics(registry, "redis"),
        monotonic=clock,
    )
    return state, fake, clock, registry


async def test_a_down_redis_is_skipped_until_the_probe_interval_passed() -> None:
    state, fake, clock, registry = store(probe_interval_seconds=2.0)
    fake.down = True
    assert await state.take("acme", 10.0, 5) == 0.0  # the local bucket decides
    assert fake.calls == ["take"] and state.degraded
    for _ in range(5):
        await state.take("acme", 10.0, 5)
    assert fake.calls == ["take"]  # not tried again before the probe is due
    assert registry.get_sample_value("tierroute_router_state_degraded", {"backend": "redis"}) == 1
    clock.now += 2.5
    fake.down = False
    await state.take("acme", 10.0, 5)
    assert fake.calls == ["take", "take"] and not state.degraded
    assert registry.get_sample_value("tierroute_router_state_degraded", {"backend": "redis"}) == 0


async def test_budgets_fail_closed_by_default_and_open_when_configured() -> None:
    closed, fake, _, registry = store()
    fake.down = True
    with pytest.raises(BudgetUnavailableError, match="budget_fail: closed"):
        await closed.reserve("acme", 1.0, 0.1)
    with pytest.raises(BudgetUnavailableError):
        await closed.check_budget("acme", 1.0)
    refused = {"operation": "reserve", "outcome": "refused"}
    assert registry.get_sample_value("tierroute_router_state_fallbacks_total", refused) == 1
    opened, fake, _, _ = store(budget_fail=BudgetFailMode.OPEN)
    fake.down = True
    reservation = await opened.reserve("acme", 1.0, 0.1)
    assert reservation.backend == "memory"


async def test_what_missed_redis_is_replayed_once_in_order_on_recovery() -> None:
    state, fake, clock, _ = store(probe_interval_seconds=1.0)
    first = await state.reserve("acme", 1.0, 0.5)
    slot, _ = await state.open_stream("acme", 4)
    assert slot is not None and slot.backend == "redis"
    fake.down = True
    await state.settle(first, 0.2)  # fails: queued
    await state.close_stream(slot)  # skipped (degraded): queued
    assert state.pending == 2 and fake.settled == []
    clock.now += 1.5
    fake.down = False
    await state.replay()
    assert fake.settled == [(first.id, 0.2)] and fake.closed == [slot.id]
    assert state.pending == 0
    await state.replay()
    assert fake.settled == [(first.id, 0.2)]  # nothing applied twice


async def test_costs_admitted_locally_reach_the_shared_day_after_recovery() -> None:
    state, fake, clock, _ = store(budget_fail=BudgetFailMode.OPEN, probe_interval_seconds=1.0)
    fake.down = True
    local = await state.reserve("acme", 1.0, 0.5)
    await state.settle(local, 0.3)
    assert await state.spent("acme") == pytest.approx(0.3)  # the replica's own count meanwhile
    clock.now += 1.5
    fake.down = False
    await state.replay()
    assert fake.settled == [(local.id, 0.3)]  # same id: Redis applies it once


async def test_the_replay_queue_is_bounded() -> None:
    state, fake, _, _ = store(max_pending=2)
    reservations = [await state.reserve("acme", 1.0, 0.1) for _ in range(3)]
    fake.down = True
    for reservation in reservations:
        await state.settle(reservation, 0.1)
    assert state.pending == 2  # the oldest was dropped (and logged)
