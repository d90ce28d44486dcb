"""Metrics of the shared router state: degraded or not, failures, fallbacks and the replay queue.

Registered on the router's own registry; operation labels come from :data:`OPERATIONS`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

OPERATIONS = (
    "check_budget",
    "reserve",
    "settle",
    "take",
    "open_stream",
    "close_stream",
    "replay",
    "samples",
)
# The fallbacks that can happen (operation, outcome): exported at 0 from the start.
FALLBACKS = (
    ("check_budget", "refused"),
    ("check_budget", "local"),
    ("reserve", "refused"),
    ("reserve", "local"),
    ("take", "local"),
    ("open_stream", "local"),
)


class StateMetrics:
    """``tierroute_router_state_*``: what the dashboards and the alert read."""

    def __init__(self, registry: CollectorRegistry, backend: str) -> None:
        self.degraded = Gauge(
            "tierroute_router_state_degraded",
            "1 while the shared state store is unreachable and replica-local state serves",
            ["backend"],
            registry=registry,
        ).labels(backend)
        self.errors = Counter(
            "tierroute_router_state_errors_total",
            "Shared-state operations that failed or timed out, by operation",
            ["operation"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "tierroute_router_state_fallbacks_total",
            "Operations decided by the replica-local fallback (or refused: budget fail closed)",
            ["operation", "outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "tierroute_router_state_pending_operations",
            "Settlements and stream releases waiting for the shared store to come back",
            registry=registry,
        )
        self.replayed = Counter(
            "tierroute_router_state_replayed_total",
            "Queued settlements and releases applied after the shared store came back",
            registry=registry,
        )
        for operation in OPERATIONS:
            self.errors.labels(operation)
        for operation, outcome in FALLBACKS:
            self.fallbacks.labels(operation, outcome)
