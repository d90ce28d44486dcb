"""Prometheus metrics of the model service, in a registry owned by the process (no globals).

Names are a contract with the router, the dashboards and the alert rules. Labels are bound
once per tier; status codes come from a fixed set, anything else is recorded as "unknown".
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CODES = (
    "OK",
    "INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
)
"""Status codes a finished Generate call is counted under."""

# TTFT on the CPU tiers is tens of milliseconds idle and seconds under load; on GPUs it is
# milliseconds. The buckets span both.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ModelMetrics:
    """The model service's metrics for one tier, pre-bound to that tier."""

    def __init__(self, registry: CollectorRegistry, tier: str) -> None:
        self.registry = registry
        self.tier = tier
        requests = Counter(
            "tierroute_model_requests_total",
            "Finished Generate calls by gRPC status code.",
            ["tier", "code"],
            registry=registry,
        )
        self._requests = {code: requests.labels(tier=tier, code=code) for code in CODES}
        self._requests_unknown = requests.labels(tier=tier, code="unknown")
        self.ttft_seconds = Histogram(
            "tierroute_model_ttft_seconds",
            "Time from request to first generated token (seconds).",
            ["tier"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        ).labels(tier=tier)
        self.inter_token_latency_seconds = Histogram(
            "tierroute_model_inter_token_latency_seconds",
            "Time between consecutive streamed deltas (seconds).",
            ["tier"],
            buckets=ITL_BUCKETS,
            registry=registry,
        ).labels(tier=tier)
        self.prompt_tokens = Counter(
            "tierroute_model_prompt_tokens_total",
            "Prompt tokens of served requests (after templating).",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)
        self.completion_tokens = Counter(
            "tierroute_model_completion_tokens_total",
            "Generated tokens streamed to callers.",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)
        self.active_streams = Gauge(
            "tierroute_model_active_streams",
            "Generate streams in progress.",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)
        self.max_concurrent_streams = Gauge(
            "tierroute_model_max_concurrent_streams",
            "Configured limit of concurrent Generate streams.",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)
        self.confidence = Histogram(
            "tierroute_model_confidence",
            "Finished.confidence.score of completed generations.",
            ["tier"],
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        ).labels(tier=tier)
        self.engine_up = Gauge(
            "tierroute_model_engine_up",
            "1 while the inference engine runs, 0 when dead or not loaded.",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)
        self._unfinished = Gauge(
            "tierroute_model_engine_unfinished_requests",
            "Requests the inference engine still holds (waiting or running), read at scrape.",
            ["tier"],
            registry=registry,
        ).labels(tier=tier)

    def count_request(self, code: str) -> None:
        """Count one finished Generate call under its status code name."""
        self._requests.get(code, self._requests_unknown).inc()

    def watch_unfinished_requests(self, read: Callable[[], int]) -> None:
        """Report the engine's unfinished-request count, read when scraped."""
        self._unfinished.set_function(lambda: float(read()))
