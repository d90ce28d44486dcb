"""The one place that turns the ``state`` settings into the router's state store."""

from __future__ import annotations

import ssl

import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from router_svc.start_tier.learner import StartTierLearner
from router_svc.state.memory import InProcessState
from router_svc.state.metrics import StateMetrics
from router_svc.state.redis_samples import RedisSampleStore, SharedDocuments
from router_svc.state.redis_store import RedisState
from router_svc.state.resilient import ResilientState
from router_svc.state.settings import StateBackend, StateSettings
from router_svc.state.start_tier_outcomes import SharedStartTierOutcomes
from router_svc.state.store import RouterState

_log = structlog.get_logger("router_svc.state")


def redis_client(settings: StateSettings) -> Redis:
    """A pooled asyncio client: bounded connections, per-call deadlines, no hidden retries.

    Retries are the resilient store's business (it stops trying while Redis is down), so the
    client itself never retries; a caller waits for a free connection at most ``timeout_ms``.
    """
    timeout = settings.timeout_ms / 1000
    kwargs: dict[str, object] = {
        "max_connections": settings.max_connections,
        "timeout": timeout,
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.connect_timeout_ms / 1000,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    password = settings.password()
    if password is not None:
        kwargs["password"] = password
    if settings.username is not None:
        kwargs["username"] = settings.username
    if settings.url.startswith("rediss://"):
        tls = settings.tls
        kwargs["connection_class"] = SSLConnection
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if tls is not None:
            kwargs["ssl_ca_certs"] = None if tls.ca_file is None else str(tls.ca_file)
            kwargs["ssl_certfile"] = None if tls.cert_file is None else str(tls.cert_file)
            kwargs["ssl_keyfile"] = None if tls.key_file is None else str(tls.key_file)
            kwargs["ssl_check_hostname"] = tls.check_hostname
    pool = BlockingConnectionPool.from_url(settings.url, **kwargs)
    return Redis(connection_pool=pool)


def open_state(settings: StateSettings, registry: CollectorRegistry) -> RouterState:
    """The configured store: in-process, or Redis behind the replica-local fallback.

    Opening does no I/O: a Redis that is down at start-up is a degraded store, not a router
    that fails to start (its first operations decide, as the settings say).
    """
    if settings.backend is StateBackend.MEMORY:
        return InProcessState()
    remote = RedisState(
        redis_client(settings),
        key_prefix=settings.key_prefix,
        timeout_seconds=settings.timeout_ms / 1000,
        reservation_ttl_seconds=settings.reservation_ttl_seconds,
        stream_lease_seconds=settings.stream_lease_seconds,
    )
    metrics = StateMetrics(registry, remote.name)
    _log.info(
        "state store",
        backend=remote.name,
        key_prefix=settings.key_prefix,
        tls=settings.url.startswith("rediss://"),
        budget_fail=settings.budget_fail.value,
    )
    return ResilientState(remote, InProcessState(), settings, metrics)


def shared_sample_store(state: RouterState, settings: StateSettings) -> RedisSampleStore | None:
    """The judged-sample store every replica shares (Redis backend), else ``None``: the
    quality loop keeps its in-process store. Uses the state store's connection pool."""
    if not isinstance(state, ResilientState):
        return None
    return RedisSampleStore(
        state.remote.client,
        settings.key_prefix,
        settings.samples_capacity,
        settings.timeout_ms / 1000,
    )


def shared_documents(state: RouterState, settings: StateSettings) -> SharedDocuments | None:
    """Versioned documents every replica shares (controller thresholds, learned start-tier
    parameters) with the Redis backend, else ``None`` (each process keeps its own files)."""
    if not isinstance(state, ResilientState):
        return None
    return SharedDocuments(state.remote.client, settings.key_prefix, settings.timeout_ms / 1000)


def shared_start_tier_outcomes(
    state: RouterState, settings: StateSettings, learner: StartTierLearner, interval: float
) -> SharedStartTierOutcomes | None:
    """The start-tier outcomes every replica shares (Redis backend), else ``None``: the
    learner learns from this replica's traffic alone."""
    if not isinstance(state, ResilientState):
        return None
    return SharedStartTierOutcomes(
        state.remote.client,
        learner,
        settings.key_prefix,
        capacity=learner.capacity,
        interval_seconds=interval,
        timeout_seconds=settings.timeout_ms / 1000,
    )
