"""Redis state with decided faults: replica-local fallback, fail-closed budgets, replay on recovery.

While Redis answers, every operation goes to it. When an operation fails or exceeds
``state.timeout_ms``, the store is *degraded*: ``tierroute_router_state_degraded`` is 1, a
``state_degraded`` event is logged once, and for ``state.probe_interval_seconds`` Redis is not
tried at all (requests do not each wait for the timeout); then the next operation probes it.

While degraded, rate limits and stream limits are counted by this replica alone (each replica
allows the full per-tenant limit), and budgets follow ``state.budget_fail``: ``closed`` refuses
tenants that have a budget with UNAVAILABLE; ``open`` admits them against this replica's own
count. Settlements and stream releases that could not reach Redis, and the costs of requests
admitted locally, are queued and replayed once Redis answers again; a settlement carries its
reservation's id and Redis applies each id once, so a replay never charges twice.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from router_svc.state.memory import InProcessState
from router_svc.state.metrics import StateMetrics
from router_svc.state.redis_store import RedisState
from router_svc.state.settings import BudgetFailMode, StateSettings
from router_svc.state.store import Reservation, StateUnavailableError, StreamSlot
from tierroute.errors import UnavailableError

T = TypeVar("T")
_log = structlog.get_logger("router_svc.state")
_Pending = tuple[Reservation, float] | StreamSlot


class BudgetUnavailableError(UnavailableError):
    """A tenant's budget cannot be checked while the shared store is down (fail closed)."""


class ResilientState:
    """:class:`RedisState` first, :class:`InProcessState` when Redis cannot answer in time."""

    def __init__(
        self,
        remote: RedisState,
        local: InProcessState,
        settings: StateSettings,
        metrics: StateMetrics,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remote = remote
        self._local = local
        self._settings = settings
        self._metrics = metrics
        self._monotonic = monotonic
        self._skip_until = 0.0
        self._degraded_since: float | None = None
        self._pending: deque[_Pending] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """``redis`` (the backend it shares state through)."""
        return self._remote.name

    @property
    def degraded(self) -> bool:
        """Whether the last attempt at Redis failed (local state serves)."""
        return self._degraded_since is not None

    @property
    def pending(self) -> int:
        """Settlements and releases waiting for Redis."""
        return len(self._pending)

    @property
    def remote(self) -> RedisState:
        """The Redis store (for the other shared stores and for tests)."""
        return self._remote

    async def _try(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` on Redis unless degraded and not yet due for a probe; failures degrade."""
        if self._monotonic() < self._skip_until:
            raise StateUnavailableError("redis skipped until the next probe")
        try:
            result = await call()
        except StateUnavailableError as exc:
            self._metrics.errors.labels(operation).inc()
            self._degrade(operation, exc)
            raise
        if self._degraded_since is not None:
            self._recover()
        return result

    def _degrade(self, operation: str, exc: Exception) -> None:
        self._skip_until = self._monotonic() + self._settings.probe_interval_seconds
        if self._degraded_since is None:
            self._degraded_since = self._monotonic()
            self._metrics.degraded.set(1)
            _log.warning(
                "state_degraded",
                backend=self.name,
                operation=operation,
                error=str(exc),
                budget_fail=self._settings.budget_fail.value,
            )

    def _recover(self) -> None:
        assert self._degraded_since is not None
        outage = self._monotonic() - self._degraded_since
        self._degraded_since = None
        self._skip_until = 0.0
        self._metrics.degraded.set(0)
        _log.info(
            "state_recovered",
            backend=self.name,
            outage_seconds=round(outage, 3),
            pending=len(self._pending),
        )
        self._spawn(self.replay())

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _queue(self, item: _Pending) -> None:
        if self._settings.max_pending == 0:
            return
        if len(self._pending) >= self._settings.max_pending:
            dropped = self._pending.popleft()
            _log.error("state_pending_dropped", item=repr(dropped))
        self._pending.append(item)
        self._metrics.pending.set(len(self._pending))

    async def _apply(self, item: _Pending) -> None:
        if isinstance(item, StreamSlot):
            await self._remote.close_stream(item)
        else:
            await self._remote.settle(*item)

    async def replay(self) -> None:
        """Apply queued settlements and releases to Redis (stops at the first failure)."""
        while self._pending:
            item = self._pending[0]
            try:
                await self._try("replay", functools.partial(self._apply, item))
            except StateUnavailableError:
                break
            if self._pending and self._pending[0] is item:
                self._pending.popleft()
            self._metrics.replayed.inc()
            self._metrics.pending.set(len(self._pending))

    def _budget_down(self, operation: str, tenant: str) -> None:
        """Fail closed (raise) or let the local count decide (return)."""
        if self._settings.budget_fail is BudgetFailMode.CLOSED:
            self._metrics.fallbacks.labels(operation, "refused").inc()
            raise BudgetUnavailableError(
                f"tenant {tenant}'s daily budget cannot be checked: the shared state store is "
                "unreachable (state.budget_fail: closed); retry shortly"
            )
        self._metrics.fallbacks.labels(operation, "local").inc()

    async def check_budget(self, tenant: str, budget_usd: float) -> None:
        """Redis's verdict; when down: refused (closed) or this replica's count (open)."""
        try:
            await self._try("check_budget", lambda: self._remote.check_budget(tenant, budget_usd))
        except StateUnavailableError:
            self._budget_down("check_budget", tenant)
            await self._local.check_budget(tenant, budget_usd)

    async def reserve(self, tenant: str, budget_usd: float, amount_usd: float) -> Reservation:
        """A reservation in Redis; when down: refused (closed) or held locally (open)."""
        try:
            return await self._try(
                "reserve", lambda: self._remote.reserve(tenant, budget_usd, amount_usd)
            )
        except StateUnavailableError:
            self._budget_down("reserve", tenant)
            return await self._local.reserve(tenant, budget_usd, amount_usd)

    def ticket(self, tenant: str) -> Reservation:
        """A zero reservation of today (a tenant without a budget is still charged)."""
        return self._remote.ticket(tenant)

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        """Settle where the reservation is held; what cannot reach Redis now is replayed later.

        Shielded: a caller that hangs up mid-settlement does not lose the charge.
        """
        await asyncio.shield(self._settle(reservation, cost_usd))

    async def _settle(self, reservation: Reservation, cost_usd: float) -> None:
        if reservation.backend == self._local.name:
            await self._local.settle(reservation, cost_usd)
            # Admitted locally while Redis was down: the cost still belongs to the shared day.
            shared = Reservation(
                reservation.tenant, reservation.day, 0.0, self.name, reservation.id
            )
            self._queue((shared, cost_usd))
            return
        try:
            await self._try("settle", lambda: self._remote.settle(reservation, cost_usd))
        except StateUnavailableError:
            self._queue((reservation, cost_usd))

    async def spent(self, tenant: str) -> float:
        """Shared spend of today (this replica's count while Redis is down)."""
        try:
            return await self._try("check_budget", lambda: self._remote.spent(tenant))
        except StateUnavailableError:
            return await self._local.spent(tenant)

    async def take(self, tenant: str, rate: float, burst: int) -> float:
        """The shared bucket; while Redis is down this replica's own bucket."""
        try:
            return await self._try("take", lambda: self._remote.take(tenant, rate, burst))
        except StateUnavailableError:
            self._metrics.fallbacks.labels("take", "local").inc()
            return await self._local.take(tenant, rate, burst)

    async def open_stream(self, tenant: str, limit: int) -> tuple[StreamSlot | None, int]:
        """A shared slot; while Redis is down a slot of this replica's own count."""
        try:
            return await self._try("open_stream", lambda: self._remote.open_stream(tenant, limit))
        except StateUnavailableError:
            self._metrics.fallbacks.labels("open_stream", "local").inc()
            return await self._local.open_stream(tenant, limit)

    async def close_stream(self, slot: StreamSlot) -> None:
        """Release the slot where it is held (a Redis release that fails is replayed)."""
        await asyncio.shield(self._close_stream(slot))

    async def _close_stream(self, slot: StreamSlot) -> None:
        if slot.backend == self._local.name:
            await self._local.close_stream(slot)
            return
        try:
            await self._try("close_stream", lambda: self._remote.close_stream(slot))
        except StateUnavailableError:
            self._queue(slot)

    async def open_streams(self, tenant: str) -> int:
        """Open streams across replicas (this replica's while Redis is down)."""
        try:
            return await self._try("open_stream", lambda: self._remote.open_streams(tenant))
        except StateUnavailableError:
            return await self._local.open_streams(tenant)

    async def close(self) -> None:
        """Replay what is queued (one attempt), wait for background work, close the pool."""
        self._skip_until = 0.0
        await self.replay()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._settings.timeout_ms / 1000 * 10)
        if self._pending:
            _log.error("state_pending_lost", pending=len(self._pending))
        await self._remote.close()
