"""The router's Prometheus metrics, all in one per-process registry, labels from bounded sets.

Names are a contract with the dashboards and alert rules (see ``docs/``); label values outside
their known sets are exported as ``"unknown"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

UNKNOWN = "unknown"
NONE_TIER = "none"
STATUS_CODES = frozenset(
    {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)
ESCALATION_CAUSES = frozenset({"low_confidence", "early_window", "tier_error"})
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class RouterMetrics:
    """Every router metric, registered on ``registry`` (never the global one)."""

    def __init__(
        self, registry: CollectorRegistry, tiers: Iterable[str], reasons: Iterable[str]
    ) -> None:
        self._tiers = frozenset(tiers)
        self._reasons = frozenset(reasons)
        # Bound children by label values; the label sets are bounded, so is this cache.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        p = "tierroute_router_"
        self.requests = Counter(
            p + "requests_total",
            "Finished Generate calls by gRPC status and the tier that served",
            ["code", "served_tier"],
            registry=registry,
        )
        self.decisions = Counter(
            p + "decisions_total", "Routing decisions", ["tier", "reason"], registry=registry
        )
        self.decision_latency = Histogram(
            p + "decision_latency_seconds",
            "Time to decide a tier (rules + classifier)",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.classifier_score = Histogram(
            p + "classifier_score",
            "Classifier probability that the cheapest tier is good enough",
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.escalations = Counter(
            p + "escalations_total",
            "Requests moved to a larger tier",
            ["from_tier", "to_tier", "cause"],
            registry=registry,
        )
        self.cost = Counter(
            p + "cost_usd_total",
            "Spend per tier, tokens of discarded answers included (US dollars)",
            ["tier"],
            registry=registry,
        )
        self.baseline_cost = Counter(
            p + "baseline_cost_usd_total",
            "Estimated cost of the same requests on the largest tier alone: served token counts "
            "at the largest tier's prices (US dollars)",
            registry=registry,
        )
        self.tokens = Counter(
            p + "tokens_total", "Tokens per tier", ["tier", "kind"], registry=registry
        )
        self.ttft = Histogram(
            p + "ttft_seconds",
            "Time from request to the first token forwarded to the caller",
            ["tier"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            p + "request_duration_seconds",
            "Time from request to the end of the Generate stream",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.tier_errors = Counter(
            p + "tier_errors_total",
            "Failed calls to tiers (every attempt, retries included)",
            ["tier", "code"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            p + "circuit_state",
            "Circuit breaker state per endpoint (0 closed, 1 half-open, 2 open)",
            ["tier", "endpoint"],
            registry=registry,
            # Under worker processes: each worker's view, the worst one exported.
            multiprocess_mode="livemax",
        )
        self.healthy_endpoints = Gauge(
            p + "healthy_endpoints",
            "Endpoints of a tier whose circuit lets calls through",
            ["tier"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.endpoints = Gauge(
            p + "endpoints",
            "Endpoints configured per tier",
            ["tier"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        # Scrape-time readings (set_function) are invisible to the multiprocess collection,
        # which reads only stored values: refresh_watched() stores them (worker processes).
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
        self.degraded = Counter(
            p + "degraded_total",
            "Requests served by a smaller tier than wanted, by the tier that served",
            ["tier"],
            registry=registry,
        )
        self.active_streams = Gauge(
            p + "active_streams", "Generate streams in flight", registry=registry
        )
        self.shadow_requests = Counter(
            p + "shadow_requests_total",
            "Sampled requests also sent to the largest tier for comparison",
            ["tier"],
            registry=registry,
        )
        self.shadow_agreement = Histogram(
            p + "shadow_agreement",
            "Similarity of the served answer and the largest tier's shadow answer (0..1)",
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.shadow_cost = Counter(
            p + "shadow_cost_usd_total",
            "Spend of shadow requests (US dollars)",
            ["tier"],
            registry=registry,
        )
        for tier in sorted(self._tiers):
            for kind in ("prompt", "completion"):
                self.tokens.labels(tier, kind)
            self.cost.labels(tier)
            self.degraded.labels(tier)

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the lookup is on every request's path."""
        key = (id(metric), labels)
        bound = self._children.get(key)
        if bound is None:
            bound = self._children[key] = metric.labels(*labels)
        return bound

    def tier(self, name: str) -> str:
        """``name`` if it is a configured tier, else ``"unknown"``."""
        return name if name in self._tiers else UNKNOWN

    def reason(self, name: str) -> str:
        """``name`` if it is a known decision reason, else ``"unknown"``."""
        return name if name in self._reasons else UNKNOWN

    @staticmethod
    def code(name: str) -> str:
        """``name`` if it is a gRPC status name, else ``"unknown"``."""
        return name if name in STATUS_CODES else UNKNOWN

    def record_decision(self, tier: str, reason: str, latency: float, score: float | None) -> None:
        """Count a routing decision."""
        self.child(self.decisions, self.tier(tier), self.reason(reason)).inc()
        self.decision_latency.observe(latency)
        if score is not None:
            self.classifier_score.observe(score)

    def record_escalation(self, from_tier: str, to_tier: str, cause: str) -> None:
        """Count an escalation the caller was told about."""
        label = cause if cause in ESCALATION_CAUSES else UNKNOWN
        self.child(self.escalations, self.tier(from_tier), self.tier(to_tier), label).inc()

    def record_tier_error(self, tier: str, code: str) -> None:
        """Count one failed call to a tier."""
        self.child(self.tier_errors, self.tier(tier), self.code(code)).inc()

    def watch_endpoint(self, tier: str, endpoint: str, state: Callable[[], float]) -> None:
        """Export an endpoint's circuit state, read at scrape time."""
        child = self.circuit_state.labels(self.tier(tier), endpoint)
        child.set_function(state)
        self._watched.append((child, state))

    def watch_tier(self, tier: str, endpoints: int, healthy: Callable[[], float]) -> None:
        """Export a tier's endpoint count and how many are healthy, read at scrape time."""
        self.endpoints.labels(self.tier(tier)).set(endpoints)
        child = self.healthy_endpoints.labels(self.tier(tier))
        child.set_function(healthy)
        self._watched.append((child, healthy))

    def refresh_watched(self) -> None:
        """Store the current value of every scrape-time reading (see ``_watched``)."""
        for gauge, read in self._watched:
            gauge.set(read())
