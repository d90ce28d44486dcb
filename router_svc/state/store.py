"""The router-state interface every backend implements, and the values it hands out.

Budgets are per tenant and per UTC day. A request first *reserves* its worst-case cost (the
reservation is admitted while the tenant's spend plus what is already reserved is below its
budget, so concurrent requests cannot all pass one check), then *settles* it to the real cost
when it ends (a failed request settles to what its tiers really generated, often 0). Rate limits
are token buckets, open streams are leased slots; all are atomic in each backend.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from router_svc.ledger import BudgetExhaustedError
from tierroute.errors import OverloadedError


@dataclass(frozen=True, slots=True)
class Reservation:
    """Budget held for one request until it is settled."""

    tenant: str
    day: str
    """UTC day (``YYYY-MM-DD``) the reservation and its settlement count towards."""
    amount_usd: float
    backend: str
    """Which store holds it (``memory`` or ``redis``): it is settled there."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class StreamSlot:
    """One open stream counted against a tenant's limit until released."""

    tenant: str
    backend: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class StateUnavailableError(Exception):
    """The store could not answer in time (Redis down or slow); the caller decides the fallback."""

    retryable = True


def utc_day(now: float) -> tuple[str, dt.datetime]:
    """The UTC day of ``now`` (unix seconds) as ``YYYY-MM-DD``, and the midnight ending it."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    midnight = dt.datetime.combine(moment.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return moment.date().isoformat(), midnight


HELD_RETRY_SECONDS = 1.0
"""Delay suggested when the budget is held by requests in flight (they end within seconds)."""


class BudgetHeldError(OverloadedError):
    """Spend is below the budget but what requests in flight reserved fills the rest: retry soon."""


def budget_refusal(
    tenant: str, budget_usd: float, spent_usd: float, now: float, held_usd: float = 0.0
) -> OverloadedError:
    """The RESOURCE_EXHAUSTED error of a tenant whose budget is used, or fully reserved.

    Used up (``spent_usd >= budget_usd``): :class:`BudgetExhaustedError` until midnight UTC.
    Reserved by requests still running: :class:`BudgetHeldError` with a short retry delay, since
    their settlement usually gives most of it back.
    """
    if spent_usd < budget_usd:
        return BudgetHeldError(
            f"tenant {tenant}'s daily budget of {budget_usd:.6f} USD is held by requests in "
            f"flight (spent {spent_usd:.6f} USD, reserved {held_usd:.6f} USD for their worst "
            "case); retry when they finish",
            retry_after_seconds=HELD_RETRY_SECONDS,
        )
    _, midnight = utc_day(now)
    wait = max(0.0, midnight.timestamp() - now)
    return BudgetExhaustedError(tenant, budget_usd, spent_usd, midnight, wait)


class RouterState(Protocol):
    """Budgets, rate limits and open streams of tenants, shared or local.

    Backends raise :class:`StateUnavailableError` when they cannot answer in time; the
    resilient wrapper turns that into the configured fallback.
    """

    @property
    def name(self) -> str:
        """The backend's name (``memory`` or ``redis``)."""
        ...

    async def check_budget(self, tenant: str, budget_usd: float) -> None:
        """Raise :class:`BudgetExhaustedError` when spend plus reservations reached the budget."""
        ...

    async def reserve(self, tenant: str, budget_usd: float, amount_usd: float) -> Reservation:
        """Hold ``amount_usd`` of today's budget (refused as :meth:`check_budget` refuses)."""
        ...

    def ticket(self, tenant: str) -> Reservation:
        """A zero reservation of today (no I/O): settling it charges a tenant without a budget."""
        ...

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        """Replace the reservation by the real cost; idempotent (a replay charges once)."""
        ...

    async def spent(self, tenant: str) -> float:
        """US dollars ``tenant`` spent today (settled costs; reservations not included)."""
        ...

    async def take(self, tenant: str, rate: float, burst: int) -> float:
        """Take one request from the tenant's bucket: 0.0, or the seconds until a token."""
        ...

    async def open_stream(self, tenant: str, limit: int) -> tuple[StreamSlot | None, int]:
        """A slot when fewer than ``limit`` streams are open, and the count seen."""
        ...

    async def close_stream(self, slot: StreamSlot) -> None:
        """Release a slot (idempotent)."""
        ...

    async def open_streams(self, tenant: str) -> int:
        """Streams the tenant has open now."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
