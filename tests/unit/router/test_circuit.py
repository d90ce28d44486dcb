"""The per-endpoint circuit breaker with a hand-moved clock."""

from __future__ import annotations

from router_svc.circuit import CircuitBreaker, CircuitState


def state(breaker: CircuitBreaker) -> CircuitState:
    # A function call, so the type checker does not narrow the property between transitions.
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(3, 10.0, Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow() and not breaker.available()


def test_half_open_lets_one_probe_through_after_the_reset_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # one probe at a time
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED and breaker.allow()


def test_a_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10.0, clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()  # one failure in half-open is enough
    assert state(breaker) is CircuitState.OPEN


def test_a_probe_that_said_nothing_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


def test_health_checks_open_and_reopen_the_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10.0, clock)
    breaker.record_health(False)
    assert state(breaker) is CircuitState.OPEN
    clock.now += 9
    breaker.record_health(False)  # still down: the reset time starts again
    clock.now += 9
    assert state(breaker) is CircuitState.OPEN
    breaker.record_health(True)  # serving again: probe at once
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.record_health(True)
    assert state(breaker) is CircuitState.HALF_OPEN  # only a real call closes it
