"""Settings of the OpenAI-compatible endpoint: where it listens, which router it calls, defaults.

Loaded once at start-up (YAML file, ``TIERROUTE_*`` environment variables such as
``TIERROUTE_HTTP__PORT``, ``TIERROUTE_ROUTER__TARGET`` or ``TIERROUTE_ROUTER__TLS__CA_FILE``,
then command-line overrides).
"""

from __future__ import annotations

from pydantic import Field

from tierroute.config import ClientTls, LoggingSettings, Section, Settings


class HttpSettings(Section):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in containers."""
    port: int = Field(default=8080, ge=0, le=65535)
    """HTTP port; 0 picks a free one (logged at start)."""
    grace_seconds: float = Field(default=10.0, gt=0)
    """Time in-flight requests get to finish on shutdown (seconds)."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest request body accepted (bytes); larger bodies get 413."""


class UpstreamSettings(Section):
    """The router this endpoint translates to."""

    target: str = "127.0.0.1:50060"
    """gRPC target of ``tierroute.v1.RouterService`` (``host:port`` or ``dns:///name:port``)."""
    timeout_seconds: float = Field(default=120.0, gt=0)
    """Deadline of one request when the caller sends no ``x-tierroute-timeout-seconds``."""
    max_timeout_seconds: float = Field(default=600.0, gt=0)
    """Largest deadline a caller may ask for with ``x-tierroute-timeout-seconds`` (seconds)."""
    tiers_cache_seconds: float = Field(default=30.0, ge=0)
    """How long the tier list (for model names) is reused before asking ``ListTiers`` again."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest gRPC message sent or received (bytes)."""
    tls: ClientTls | None = None
    """TLS to the router (a router started with ``server.tls``): the CA its certificate chains
    to, a client certificate for mutual TLS, the name to check; unset: plaintext."""


class ModelSettings(Section):
    """Model names and request defaults."""

    auto_model: str = "tierroute-auto"
    """Model name that lets the router choose the tier; every tier name pins that tier."""
    default_max_tokens: int = Field(default=256, gt=0)
    """``max_tokens`` when a request sets none (tokens)."""
    default_fallback_mode: str = Field(
        default="buffered", pattern="^(buffered|streaming|early_window|disabled)$"
    )
    """Cascade mode when a request sets no ``tierroute.fallback_mode``; ``buffered`` means a
    caller only ever sees the final answer."""


class OpenAISettings(Settings):
    """Everything ``python -m openai_gateway`` reads at start-up."""

    http: HttpSettings = HttpSettings()
    router: UpstreamSettings = UpstreamSettings()
    models: ModelSettings = ModelSettings()
    logging: LoggingSettings = LoggingSettings()
