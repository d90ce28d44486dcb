"""Prometheus metrics of the OpenAI-compatible endpoint (one registry per app, bounded labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

ROUTES = ("chat_completions", "completions", "models", "feedback")
# Gateway work is milliseconds; TTFT and whole requests follow the model (up to minutes).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class HttpMetrics:
    """Requests by route and status, request duration, time to the first streamed token."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tierroute_openai_requests_total",
            "HTTP requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "tierroute_openai_request_duration_seconds",
            "Time from request to the end of the response (seconds).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "tierroute_openai_ttft_seconds",
            "Time from request to the first streamed text chunk (seconds).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        label = route if route in ROUTES else "unknown"
        self.requests.labels(label, str(status)).inc()
        self.duration.labels(label).observe(seconds)
