"""A flapping endpoint: the small tier's process killed and restarted on the same port.

Without health checks, the circuit opens after ``circuit_failure_threshold`` failed calls, lets
one probe through after ``circuit_reset_seconds`` (half-open), re-opens when the probe fails
and closes when it succeeds. With health checks, it opens and closes on its own, with no
caller paying for the discovery. Callers are served by the large tier meanwhile.
"""

from __future__ import annotations

import time

import grpc
import pytest

from tests.integration.faults.conftest import RESILIENCE, Launcher, Outcomes, router_stub, serving
from tests.integration.faults.helpers import CallResult, call, eventually, list_tiers, request

THRESHOLD = 2
RESET = 1.0
CLOSED, HALF_OPEN, OPEN = 0.0, 1.0, 2.0
DEADLINE = 10.0


@pytest.mark.slow  # reset times and a restart: 10-15 s
async def test_circuit_opens_after_the_failures_and_closes_after_the_reset(
    launcher: Launcher, outcomes: Outcomes
) -> None:
    small = launcher.model("flap-small")
    large = launcher.model("flap-large", "large")
    router = launcher.router(
        "router-flap",
        {"small": [small.address], "large": [large.address]},
        # Calls alone drive the breaker here: one attempt per call, no health checks.
        resilience={
            "retries": 0,
            "health_check_interval_seconds": 0,
            "circuit_failure_threshold": THRESHOLD,
            "circuit_reset_seconds": RESET,
        },
    )
    launcher.ready()
    circuit = f'circuit_state{{endpoint="{small.address}",tier="small"}}'
    errors = 'tier_errors_total{code="UNAVAILABLE",tier="small"}'

    def state() -> float | None:
        return router.metric(circuit)

    async with router_stub(router.address) as stub:

        async def served_by(tier: str) -> CallResult:
            result = await call(stub, request(), DEADLINE)
            assert result.code == grpc.StatusCode.OK, result.details
            assert result.finished.served_tier == tier
            assert result.seconds < 2
            return result

        await served_by("small")
        assert state() == CLOSED

        small.kill()
        for failures in range(1, THRESHOLD + 1):
            opening = time.monotonic()  # the circuit opens during the last of these calls
            await served_by("large")
            assert router.metric(errors) == failures
            assert state() == (OPEN if failures == THRESHOLD else CLOSED)
        opened = time.monotonic()
        assert (await list_tiers(stub))["small"].healthy_endpoints == 0
        # Open: the dead endpoint is not even called.
        skipped = await served_by("large")
        assert router.metric(errors) == THRESHOLD
        assert "every endpoint's circuit is open" in skipped.escalations[0].reason

        # After the reset time one probe may go; it fails (still down) and re-opens.
        await eventually(lambda: state() == HALF_OPEN, timeout=3, what="half-open")
        half_open = time.monotonic()
        assert half_open - opening >= RESET
        assert half_open - opened < RESET + 1.0  # polling on a busy machine adds a little
        half_open_after = half_open - opening
        assert (await list_tiers(stub))["small"].healthy_endpoints == 1
        await served_by("large")
        assert router.metric(errors) == THRESHOLD + 1
        assert state() == OPEN

        # Back up on the same port: the next probe after the reset time closes the circuit
        # (the router's channel may need a reconnect attempt or two first).
        small.restart()
        probes = 0
        deadline = time.monotonic() + 10
        while state() != CLOSED:
            assert time.monotonic() < deadline, "circuit did not close within 10 s"
            await eventually(lambda: state() == HALF_OPEN, timeout=3, what="half-open")
            result = await call(stub, request(), DEADLINE)
            assert result.code == grpc.StatusCode.OK, result.details
            probes += 1
        assert result.finished.served_tier == "small" and not result.escalations
        assert probes <= 3
        assert (await list_tiers(stub))["small"].healthy_endpoints == 1
        await served_by("small")
        assert await serving(router.address)
    outcomes.record(
        f"flapping endpoint, calls only (threshold {THRESHOLD}, reset {RESET:.0f} s)",
        f"open after {THRESHOLD} failed calls (callers served by large); half-open "
        f"{half_open_after:.2f} s after the failing call began; failed probe re-opened; "
        f"after the restart closed on probe {probes}, served by small",
    )


async def test_health_checks_open_and_close_the_circuit_without_callers(
    launcher: Launcher, outcomes: Outcomes
) -> None:
    small = launcher.model("flap-health-small")
    large = launcher.model("flap-health-large", "large")
    interval = float(RESILIENCE["health_check_interval_seconds"])
    router = launcher.router(
        "router-flap-health", {"small": [small.address], "large": [large.address]}
    )
    launcher.ready()
    healthy = 'healthy_endpoints{tier="small"}'
    await eventually(lambda: router.metric(healthy) == 1, what="small healthy at start")
    small.kill()
    opened = await eventually(lambda: router.metric(healthy) == 0, timeout=5, what="opened")
    assert opened < interval + 0.5
    restarting = time.monotonic()
    small.restart()
    restart_seconds = time.monotonic() - restarting
    closed = await eventually(lambda: router.metric(healthy) == 1, timeout=8, what="closed")
    assert closed < 3
    async with router_stub(router.address) as stub:
        result = await call(stub, request(), DEADLINE)
    assert result.code == grpc.StatusCode.OK, result.details
    assert result.finished.served_tier == "small" and not result.escalations
    circuit = f'circuit_state{{endpoint="{small.address}",tier="small"}}'
    assert router.metric(circuit) == CLOSED
    # No caller was routed to the dead endpoint: no Generate call to it ever failed.
    assert (router.metric('tier_errors_total{code="UNAVAILABLE",tier="small"}') or 0) == 0
    outcomes.record(
        f"flapping endpoint, health checks every {interval} s",
        f"open {opened:.2f} s after the kill; healthy {closed:.2f} s after the restarted "
        f"process was SERVING (its start took {restart_seconds:.1f} s); no caller sent to the "
        "dead endpoint",
    )
