"""A per-endpoint circuit breaker: closed, open after N consecutive failures, half-open probe.

Pure state machine (no I/O, no gRPC): the tier client reports call outcomes and health-check
results, and asks :meth:`CircuitBreaker.allow` before each call. The clock is injected so tests
can move time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.IntEnum):
    """Breaker states; the values are what the ``circuit_state`` gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; probes after ``reset_seconds``."""

    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state, moving OPEN to HALF_OPEN once the reset time has passed."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self._reset_seconds
        ):
            self._state = CircuitState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in HALF_OPEN only one probe at a time is let through."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def available(self) -> bool:
        """Whether :meth:`allow` would let a call through, without taking the probe slot."""
        state = self.state
        return state is CircuitState.CLOSED or (
            state is CircuitState.HALF_OPEN and not self._probe_in_flight
        )

    def record_success(self) -> None:
        """A call (or the half-open probe) succeeded: close."""
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """A call failed in a way that says the endpoint is broken (not the caller's fault)."""
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._trip()

    def release_probe(self) -> None:
        """A let-through call ended without saying anything about the endpoint's health."""
        self._probe_in_flight = False

    def record_health(self, serving: bool) -> None:
        """A ``grpc.health.v1`` answer: NOT_SERVING opens at once; SERVING lets an open circuit
        probe immediately instead of waiting for the reset time. (A check that got no answer
        is a :meth:`record_failure`.)"""
        if not serving:
            # Re-tripping an open circuit restarts its reset time: no real request is spent
            # probing an endpoint that says it is not serving.
            self._trip()
            return
        if self._state is CircuitState.OPEN:
            self._state = CircuitState.HALF_OPEN
            self._probe_in_flight = False

    def _trip(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False
