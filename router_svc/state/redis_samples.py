"""Judged samples and learned state in Redis, so every replica judges, learns and routes alike.

:class:`RedisSampleStore` implements :class:`~router_svc.quality.samples.SampleStore` over a
capped Redis stream (``{samples}:all``, trimmed to ``state.samples_capacity``) plus one stream
per tier holding the same entry ids (trimmed to the oldest id still in the main stream, so the
per-tier counts agree with it). Every replica adds the samples it judged and reads everyone's.

:class:`SharedDocuments` keeps small versioned JSON documents (the quality controller's
thresholds, the learned start-tier model's parameters) with compare-and-set writes: a replica
that saves over a newer version is told so and reloads instead of overwriting it.

Faults: a Redis call that fails or passes ``state.timeout_ms`` is served by an in-process store
of the same capacity (samples judged during an outage stay on their replica; the evidence
rebuilds from the shared stream once Redis answers); documents report ``None`` (keep the local
copy) and a save is retried on the next save.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router_svc.quality.samples import InProcessSampleStore, JudgedSample, SampleFormatError

T = TypeVar("T")
_log = structlog.get_logger("router_svc.state")

# KEYS: all, tier stream. ARGV: sample json, capacity. Returns the new entry id.
_ADD = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 's', ARGV[1])
redis.call('XADD', KEYS[2], id, 's', ARGV[1])
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #oldest > 0 then redis.call('XTRIM', KEYS[2], 'MINID', oldest[1][1]) end
return id
"""

# KEYS: all, tier stream. Drops the tier's entries the main stream no longer holds (a tier
# stream is trimmed when it is added to; another tier's additions trim it only here).
_TRIM = """
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #oldest > 0 then redis.call('XTRIM', KEYS[2], 'MINID', oldest[1][1])
else redis.call('DEL', KEYS[2]) end
return redis.call('XLEN', KEYS[2])
"""

# KEYS: document hash. ARGV: expected version ('' = any), text. Returns the new version, or
# -current when the expected version is not the stored one.
_SAVE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then return -current - 1 end
redis.call('HSET', KEYS[1], 'version', current + 1, 'text', ARGV[2])
return current + 1
"""


class RedisUnavailableError(Exception):
    """A Redis call failed or ran past its timeout."""


async def bounded(operation: Awaitable[T], timeout: float) -> T:
    """``operation`` within ``timeout`` seconds; any failure is :class:`RedisUnavailableError`."""
    try:
        return await asyncio.wait_for(operation, timeout)
    except (TimeoutError, RedisError, OSError) as exc:
        raise RedisUnavailableError(f"{type(exc).__name__}: {exc}") from exc


class RedisSampleStore:
    """The judged samples of every replica, in one capped Redis stream."""

    def __init__(
        self, client: Redis, key_prefix: str, capacity: int, timeout_seconds: float = 0.1
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._client = client
        self._base = f"{key_prefix}{{samples}}"
        self._capacity = capacity
        self._timeout = timeout_seconds
        self._local = InProcessSampleStore(capacity)
        self._add = client.register_script(_ADD)
        self._trim = client.register_script(_TRIM)
        self.degraded = False
        """Whether the last call failed (the local store serves until one succeeds)."""

    def _key(self, tier: str | None) -> str:
        return f"{self._base}:all" if tier is None else f"{self._base}:tier:{tier}"

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            result = await bounded(operation, self._timeout)
        except RedisUnavailableError as exc:
            if not self.degraded:
                _log.warning("state_degraded", backend="redis", operation="samples", error=str(exc))
            self.degraded = True
            raise
        if self.degraded:
            _log.info("state_recovered", backend="redis", operation="samples")
        self.degraded = False
        return result

    async def add(self, sample: JudgedSample) -> None:
        """Append ``sample`` to the shared stream (the oldest beyond capacity is trimmed)."""
        try:
            await self._call(
                self._add(
                    keys=[self._key(None), self._key(sample.tier)],
                    args=[sample.dumps(), self._capacity],
                )
            )
        except RedisUnavailableError:
            await self._local.add(sample)

    async def recent(self, limit: int, tier: str | None = None) -> list[JudgedSample]:
        """Up to ``limit`` most recent samples (of ``tier`` if given), oldest first."""
        if limit <= 0:
            return []
        try:
            if tier is not None:
                await self._call(self._trim(keys=[self._key(None), self._key(tier)]))
            found = await self._call(self._client.xrevrange(self._key(tier), count=limit))
            entries: list[Any] = list(found or [])
        except RedisUnavailableError:
            return await self._local.recent(limit, tier)
        samples: list[JudgedSample] = []
        for entry_id, fields in reversed(entries):
            try:
                samples.append(JudgedSample.loads(fields[b"s"].decode()))
            except (SampleFormatError, KeyError, UnicodeDecodeError) as exc:
                _log.warning("sample_skipped", entry=str(entry_id), error=str(exc))
        return samples

    async def count(self, tier: str | None = None) -> int:
        """How many samples the shared stream holds (of ``tier`` if given)."""
        try:
            if tier is None:
                return int(await self._call(self._client.xlen(self._key(None))))
            return int(await self._call(self._trim(keys=[self._key(None), self._key(tier)])))
        except RedisUnavailableError:
            return await self._local.count(tier)

    async def discard(self, request_id: str, judge: str) -> bool:
        """Forget the samples of ``request_id`` judged by ``judge`` (a scan of the stream)."""
        try:
            everything: Any = await self._call(self._client.xrange(self._key(None)))
            entries: list[Any] = list(everything or [])
            doomed: list[tuple[Any, JudgedSample]] = []
            for entry_id, fields in entries:
                try:
                    sample = JudgedSample.loads(fields[b"s"].decode())
                except (SampleFormatError, KeyError, UnicodeDecodeError):
                    continue
                if sample.request_id == request_id and sample.judge == judge:
                    doomed.append((entry_id, sample))
            for entry_id, sample in doomed:
                await self._call(self._client.xdel(self._key(None), entry_id))
                await self._call(self._client.xdel(self._key(sample.tier), entry_id))
        except RedisUnavailableError:
            return await self._local.discard(request_id, judge)
        local = await self._local.discard(request_id, judge)
        return bool(doomed) or local

    async def close(self) -> None:
        """Nothing to flush: every sample was written when it was added."""


class SharedDocuments:
    """Small versioned documents every replica reads and writes (compare-and-set)."""

    def __init__(self, client: Redis, key_prefix: str, timeout_seconds: float = 0.1) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout = timeout_seconds
        self._save = client.register_script(_SAVE)

    def _key(self, name: str) -> str:
        return f"{self._prefix}{{doc:{name}}}"

    async def load(self, name: str) -> tuple[int, str] | None:
        """``(version, text)`` of the document, or ``None`` (absent, or Redis unreachable)."""
        try:
            raw: list[Any] = await bounded(
                self._client.hmget(self._key(name), ["version", "text"]), self._timeout
            )
        except RedisUnavailableError as exc:
            _log.warning("shared_document_unavailable", name=name, error=str(exc))
            return None
        if raw[0] is None or raw[1] is None:
            return None
        return int(raw[0]), bytes(raw[1]).decode()

    async def save(self, name: str, text: str, expected_version: int | None = None) -> int | None:
        """Write ``text``; with ``expected_version`` only over that version (compare-and-set).

        Returns the new version, or ``None`` when another replica wrote a newer one first (load
        it) or Redis is unreachable (keep the local copy and save again later).
        """
        expected = "" if expected_version is None else str(expected_version)
        try:
            version = int(
                await bounded(
                    self._save(keys=[self._key(name)], args=[expected, text]), self._timeout
                )
            )
        except RedisUnavailableError as exc:
            _log.warning("shared_document_unavailable", name=name, error=str(exc))
            return None
        return version if version > 0 else None
