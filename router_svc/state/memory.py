"""In-process router state: one router's budgets, token buckets and stream counts.

The embedded default (``state.backend: memory``) and the replica-local fallback of the Redis
backend. Every method runs without awaiting, so each is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from router_svc.state.store import Reservation, StreamSlot, budget_refusal, utc_day

Clock = Callable[[], float]
NAME = "memory"


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> float:
        """Take one token: 0.0 when granted, else the seconds until the next token."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


@dataclass
class _Day:
    """One tenant's spend and reservations of one UTC day."""

    spent: float = 0.0
    held: dict[str, float] = field(default_factory=dict)


class InProcessState:
    """Budgets, rate limits and open streams counted in this process.

    ``clock`` is wall-clock time (``time.time``: the UTC day); ``monotonic`` drives the buckets.
    Tests pass their own. Only the current day is kept: at midnight UTC every tenant starts
    from zero (a reservation of the previous day settles into a day no longer kept).
    """

    def __init__(self, clock: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._day = ""
        self._days: dict[str, _Day] = {}
        self._buckets: dict[str, tuple[float, int, TokenBucket]] = {}
        self._streams: dict[str, set[str]] = {}

    @property
    def name(self) -> str:
        """``memory``."""
        return NAME

    def _today(self, tenant: str) -> tuple[str, _Day]:
        day, _ = utc_day(self._clock())
        if day != self._day:
            self._day = day
            self._days.clear()
        return day, self._days.setdefault(tenant, _Day())

    def _admissible(self, tenant: str, budget_usd: float) -> _Day:
        _, today = self._today(tenant)
        held = sum(today.held.values())
        if today.spent + held >= budget_usd:
            raise budget_refusal(tenant, budget_usd, today.spent, self._clock(), held)
        return today

    async def check_budget(self, tenant: str, budget_usd: float) -> None:
        """Refuse when spend plus reservations reached the budget."""
        self._admissible(tenant, budget_usd)

    async def reserve(self, tenant: str, budget_usd: float, amount_usd: float) -> Reservation:
        """Hold ``amount_usd`` while spend plus reservations are below the budget."""
        today = self._admissible(tenant, budget_usd)
        reservation = Reservation(tenant, self._day, amount_usd, NAME)
        today.held[reservation.id] = amount_usd
        return reservation

    def ticket(self, tenant: str) -> Reservation:
        """A zero reservation of today: settling it charges a tenant that has no budget."""
        day, _ = utc_day(self._clock())
        return Reservation(tenant, day, 0.0, NAME)

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        """Drop the reservation and add the real cost (to its own day, if still kept)."""
        self._today(reservation.tenant)
        if reservation.day != self._day:
            return  # a day that ended: its spend no longer limits anything
        today = self._days.setdefault(reservation.tenant, _Day())
        today.held.pop(reservation.id, None)
        if cost_usd > 0:
            today.spent += cost_usd

    async def spent(self, tenant: str) -> float:
        """Settled spend of today."""
        return self._today(tenant)[1].spent

    async def held(self, tenant: str) -> float:
        """Reserved and not yet settled, today."""
        return sum(self._today(tenant)[1].held.values())

    async def take(self, tenant: str, rate: float, burst: int) -> float:
        """One token of the tenant's bucket (a changed rate or burst starts a new bucket)."""
        known = self._buckets.get(tenant)
        if known is None or known[:2] != (rate, burst):
            known = (rate, burst, TokenBucket(rate, burst, self._monotonic))
            self._buckets[tenant] = known
        return known[2].take()

    async def open_stream(self, tenant: str, limit: int) -> tuple[StreamSlot | None, int]:
        """A slot while fewer than ``limit`` are open."""
        slots = self._streams.setdefault(tenant, set())
        if len(slots) >= limit:
            return None, len(slots)
        slot = StreamSlot(tenant, NAME)
        slots.add(slot.id)
        return slot, len(slots)

    async def close_stream(self, slot: StreamSlot) -> None:
        """Release a slot (a second release does nothing)."""
        self._streams.get(slot.tenant, set()).discard(slot.id)

    async def open_streams(self, tenant: str) -> int:
        """Streams the tenant has open here."""
        return len(self._streams.get(tenant, ()))

    async def close(self) -> None:
        """Nothing to release."""
