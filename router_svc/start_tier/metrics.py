"""Metrics of the learned start tier (registered on the router's registry)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN = "unknown"
FIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class StartTierMetrics:
    """Model version, training count, refit time and decisions by start tier."""

    def __init__(self, registry: CollectorRegistry, tiers: Iterable[str]) -> None:
        self._tiers = frozenset(tiers)
        p = "tierroute_router_start_tier_"
        # Each worker process learns its own model: per-process gauges ("liveall") under
        # prometheus_client's multiprocess collection, plain gauges otherwise.
        self.version = Gauge(
            p + "model_version",
            "Refits of the start-tier model since it was created or reset",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.trained = Gauge(
            p + "training_outcomes",
            "Cascade outcomes the start-tier model has learned from",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.decisions = Counter(
            p + "decisions_total",
            "Learned start-tier decisions by start tier (explored: the cheapest tier by the "
            "exploration share)",
            ["tier", "explored"],
            registry=registry,
        )
        self.fit_seconds = Histogram(
            p + "fit_seconds",
            "Wall time of one background refit",
            buckets=FIT_BUCKETS,
            registry=registry,
        )

    def decided(self, tier: str, explored: bool) -> None:
        """Count one decision."""
        label = tier if tier in self._tiers else UNKNOWN
        self.decisions.labels(label, "true" if explored else "false").inc()
