"""Router state in Redis, shared by every replica: each operation is one atomic Lua script.

Keys (``state.key_prefix`` first; the braces are Redis Cluster hash tags, so every key one
script touches lives in one slot):

- ``{b:<tenant>:<day>}``: hash of the tenant's settled ``spent`` and one ``r:<id>`` field per
  open reservation; ``{b:...}:exp`` a sorted set of the reservations' expiry times (a replica
  that died mid-request stops holding budget after ``state.reservation_ttl_seconds``);
  ``{b:...}:s:<id>`` the marker that makes a settlement idempotent (a replay charges once).
- ``{rl:<tenant>}``: token bucket (tokens, last refill), refilled on Redis's clock.
- ``{st:<tenant>}``: sorted set of open stream slots by lease expiry.

Every call is bounded by ``state.timeout_ms``; a timeout or a connection error becomes
:class:`~router_svc.state.store.StateUnavailableError`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router_svc.state.store import (
    Reservation,
    StateUnavailableError,
    StreamSlot,
    budget_refusal,
    utc_day,
)

NAME = "redis"
T = TypeVar("T")
_DAY_SECONDS = 86_400

# Returns {admitted (0/1), spent, held}. ARGV: id, amount, budget, expires_in, key_ttl, mode.
# Reservations past their expiry are dropped first; the server's clock decides expiry.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, rid in ipairs(expired) do redis.call('HDEL', KEYS[1], 'r:' .. rid) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local spent = 0
local held = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] == 'spent' then spent = tonumber(all[i + 1])
  elseif string.sub(all[i], 1, 2) == 'r:' then held = held + tonumber(all[i + 1]) end
end
if spent + held >= tonumber(ARGV[3]) then
  return {0, tostring(spent), tostring(held)}
end
if ARGV[6] == 'reserve' then
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return {1, tostring(spent), tostring(held)}
"""

# Returns 1 when charged, 0 when this settlement was already applied. ARGV: id, cost, key_ttl.
_SETTLE = """
if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Returns the seconds until a token (0 when one was taken). ARGV: rate, burst, key_ttl.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
"""

# Returns {opened (0/1), count}. ARGV: id, limit, lease.
_OPEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return {0, n} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return {1, n + 1}
"""

_COUNT_STREAMS = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) + tonumber(t[2]) / 1000000)
return redis.call('ZCARD', KEYS[1])
"""


class RedisState:
    """Budgets, token buckets and stream slots in Redis (see the module docstring for keys)."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str = "tierroute:",
        timeout_seconds: float = 0.1,
        reservation_ttl_seconds: float = 900.0,
        stream_lease_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout = timeout_seconds
        self._reservation_ttl = reservation_ttl_seconds
        self._lease = stream_lease_seconds
        self._clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._take = client.register_script(_TAKE)
        self._open = client.register_script(_OPEN)
        self._count = client.register_script(_COUNT_STREAMS)

    @property
    def name(self) -> str:
        """``redis``."""
        return NAME

    @property
    def client(self) -> Redis:
        """The connection pool's client (for the other shared stores)."""
        return self._client

    @property
    def key_prefix(self) -> str:
        """The prefix of every key."""
        return self._prefix

    async def _call(self, operation: Awaitable[T]) -> T:
        """``operation`` within the timeout; any Redis failure is :class:`StateUnavailableError`."""
        try:
            return await asyncio.wait_for(operation, self._timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            raise StateUnavailableError(f"redis: {type(exc).__name__}: {exc}") from exc

    def _budget_keys(self, tenant: str, day: str) -> list[str]:
        base = f"{self._prefix}{{b:{tenant}:{day}}}"
        return [base, base + ":exp"]

    def _key_ttl(self) -> int:
        # A day's keys outlive the day by one more (late settlements still find their day).
        return 2 * _DAY_SECONDS

    async def _admit(
        self, tenant: str, budget_usd: float, amount: float, reservation_id: str
    ) -> str:
        """Run the reserve script (``reservation_id`` empty: only check); returns the day."""
        now = self._clock()
        day, _ = utc_day(now)
        mode = "reserve" if reservation_id else "check"
        args: list[Any] = [
            reservation_id,
            repr(amount),
            repr(budget_usd),
            self._reservation_ttl,
            self._key_ttl(),
            mode,
        ]
        result = await self._call(self._reserve(keys=self._budget_keys(tenant, day), args=args))
        if not int(result[0]):
            raise budget_refusal(tenant, budget_usd, float(result[1]), now, float(result[2]))
        return day

    async def check_budget(self, tenant: str, budget_usd: float) -> None:
        """Refuse when today's spend plus open reservations reached the budget."""
        await self._admit(tenant, budget_usd, 0.0, "")

    async def reserve(self, tenant: str, budget_usd: float, amount_usd: float) -> Reservation:
        """Hold ``amount_usd`` atomically (admitted while spend plus reservations < budget)."""
        reservation_id = uuid.uuid4().hex
        day = await self._admit(tenant, budget_usd, amount_usd, reservation_id)
        return Reservation(tenant, day, amount_usd, NAME, reservation_id)

    def ticket(self, tenant: str) -> Reservation:
        """A zero reservation of today: settling it charges a tenant that has no budget."""
        day, _ = utc_day(self._clock())
        return Reservation(tenant, day, 0.0, NAME)

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        """Replace the reservation by ``cost_usd``, once (a marker makes replays no-ops)."""
        keys = self._budget_keys(reservation.tenant, reservation.day)
        keys.append(f"{keys[0]}:s:{reservation.id}")
        await self._call(
            self._settle(
                keys=keys, args=[reservation.id, repr(max(0.0, cost_usd)), self._key_ttl()]
            )
        )

    async def spent(self, tenant: str) -> float:
        """Settled spend of today, shared by every replica."""
        day, _ = utc_day(self._clock())
        value = await self._call(self._client.hget(self._budget_keys(tenant, day)[0], "spent"))
        return 0.0 if value is None else float(value)

    async def held(self, tenant: str) -> float:
        """Reserved and not yet settled today, by every replica."""
        day, _ = utc_day(self._clock())
        fields: dict[bytes, bytes] = await self._call(
            self._client.hgetall(self._budget_keys(tenant, day)[0])  # type: ignore[arg-type]
        )
        return sum((float(v) for k, v in fields.items() if k.startswith(b"r:")), 0.0)

    async def take(self, tenant: str, rate: float, burst: int) -> float:
        """One token of the tenant's shared bucket."""
        ttl = max(1, int(burst / rate) + 60)
        key = f"{self._prefix}{{rl:{tenant}}}"
        wait = await self._call(self._take(keys=[key], args=[repr(rate), burst, ttl]))
        return float(wait)

    def _streams_key(self, tenant: str) -> str:
        return f"{self._prefix}{{st:{tenant}}}"

    async def open_stream(self, tenant: str, limit: int) -> tuple[StreamSlot | None, int]:
        """A leased slot while fewer than ``limit`` streams are open across replicas."""
        slot = StreamSlot(tenant, NAME)
        result = await self._call(
            self._open(keys=[self._streams_key(tenant)], args=[slot.id, limit, self._lease])
        )
        return (slot if int(result[0]) else None), int(result[1])

    async def close_stream(self, slot: StreamSlot) -> None:
        """Release a slot (idempotent)."""
        await self._call(self._client.zrem(self._streams_key(slot.tenant), slot.id))

    async def open_streams(self, tenant: str) -> int:
        """Streams the tenant has open across replicas (expired leases dropped)."""
        return int(await self._call(self._count(keys=[self._streams_key(tenant)])))

    async def ping(self) -> None:
        """Raise :class:`StateUnavailableError` unless Redis answers in time."""
        await self._call(self._client.ping())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
