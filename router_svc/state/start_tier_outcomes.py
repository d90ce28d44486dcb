"""The learned start tier's outcomes shared by every router replica through Redis.

Each replica adds the outcomes it learns from (the design row of a request, the cheaper tier
it was tried on, whether it escalated, its weight) to one capped Redis stream, and reads the
other replicas' outcomes from it; :meth:`StartTierLearner.absorb` adds those to its own, so
every replica refits on the same outcomes and routes with (nearly) the same model, each
contributing its traffic. Prompts never leave the replica: a row holds numbers only (hashed
word counts, the static embedding, length and marker features).

A sync runs every ``interval`` seconds on the event loop: it sends what this replica learned
since the last one (at most ``batch`` outcomes per round) and reads what the others added. An
entry carries the sender's id (its own are skipped) and the feature layout (a replica with
another layout skips it). A replica that starts reads only what is added from then on; its
saved model (``start_tier.state_path``) carries its past.

Faults: a Redis call that fails or passes the timeout leaves the outcomes on the replica (put
back, sent on a later round; at most ``start_tier.max_samples`` wait) and logs
``state_degraded`` once; routing never waits for Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import structlog
from redis.asyncio import Redis

from router_svc.start_tier.learner import Outcome, StartTierLearner
from router_svc.state.redis_samples import RedisUnavailableError, bounded
from tierroute.tasks import cancel_and_wait

_log = structlog.get_logger("router_svc.state")


class SharedStartTierOutcomes:
    """Sends this replica's start-tier outcomes to a Redis stream and absorbs the others'."""

    def __init__(
        self,
        client: Redis,
        learner: StartTierLearner,
        key_prefix: str,
        *,
        capacity: int,
        interval_seconds: float = 1.0,
        timeout_seconds: float = 0.1,
        batch: int = 500,
        replica: str | None = None,
    ) -> None:
        if capacity < 1 or batch < 1 or interval_seconds <= 0:
            raise ValueError("capacity, batch and interval must be positive")
        self._client = client
        self._learner = learner
        self._key = f"{key_prefix}{{start_tier}}:outcomes"
        self._capacity = capacity
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._batch = batch
        self.replica = replica or uuid.uuid4().hex
        """This replica's id in the stream (its own entries are not absorbed again)."""
        self._last_id = "$"  # from now on: the past is in each replica's saved model
        self._task: asyncio.Task[None] | None = None
        self.degraded = False
        """Whether the last round failed."""
        self.sent = 0
        self.absorbed = 0
        learner.start_sharing()

    def start(self) -> None:
        """Run the sync in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="start-tier-outcomes")

    async def close(self) -> None:
        """Stop the background sync after one last round (what is left stays local)."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.sync()

    async def _run(self) -> None:
        while True:
            await self.sync()
            await asyncio.sleep(self._interval)

    async def sync(self) -> None:
        """One round: send this replica's new outcomes, absorb the others' new ones."""
        try:
            await self._send()
            await self._receive()
        except RedisUnavailableError as exc:
            if not self.degraded:
                _log.warning(
                    "state_degraded", backend="redis", operation="start_tier", error=str(exc)
                )
            self.degraded = True
            return
        if self.degraded:
            _log.info("state_recovered", backend="redis", operation="start_tier")
        self.degraded = False

    async def _send(self) -> None:
        outcomes = self._learner.share(self._batch)
        if not outcomes:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for outcome in outcomes:
                pipe.xadd(
                    self._key,
                    _fields(outcome, self.replica, self._learner.signature),
                    maxlen=self._capacity,
                    approximate=True,
                )
            await bounded(pipe.execute(), self._timeout)
        except RedisUnavailableError:
            self._learner.unshare(outcomes)
            raise
        self.sent += len(outcomes)

    async def _receive(self) -> None:
        if self._last_id == "$":
            # Where the stream ends now: read from there on.
            last: Any = await bounded(self._client.xrevrange(self._key, count=1), self._timeout)
            self._last_id = last[0][0].decode() if last else "0-0"
        found: Any = await bounded(
            self._client.xread({self._key: self._last_id}, count=self._batch), self._timeout
        )
        absorbed: list[Outcome] = []
        for _, entries in found or []:
            for entry_id, fields in entries:
                self._last_id = entry_id.decode()
                outcome = _outcome(fields, self.replica, self._learner.signature)
                if outcome is not None:
                    absorbed.append(outcome)
        if absorbed:
            self._learner.absorb(absorbed)
            self.absorbed += len(absorbed)


Field = bytes | bytearray | memoryview | str | int | float


def _fields(outcome: Outcome, replica: str, signature: str) -> dict[Field, Field]:
    return {
        "r": replica,
        "f": signature,
        "t": outcome.tier,
        "y": int(outcome.escalated),
        "w": repr(outcome.weight),
        "x": np.asarray(outcome.row, dtype="<f4").tobytes(),
    }


def _outcome(fields: dict[bytes, bytes], replica: str, signature: str) -> Outcome | None:
    """The outcome of another replica with this feature layout, else ``None``."""
    try:
        if fields[b"r"].decode() == replica or fields[b"f"].decode() != signature:
            return None
        row = np.frombuffer(fields[b"x"], dtype="<f4").astype(np.float64)
        return Outcome(int(fields[b"t"]), row, fields[b"y"] == b"1", float(fields[b"w"]))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        _log.warning("start_tier_outcome_skipped", error=repr(exc))
        return None
