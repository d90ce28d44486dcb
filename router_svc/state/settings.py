"""The ``state`` settings: which backend holds the router's shared state, and how to reach it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from tierroute.config import Section


class StateBackend(StrEnum):
    """Where budgets, rate limits and open streams are counted."""

    MEMORY = "memory"
    """In this process only (one router; the embedded default)."""
    REDIS = "redis"
    """In Redis, shared by every replica."""


class BudgetFailMode(StrEnum):
    """What a budget check does while the shared store is unreachable."""

    CLOSED = "closed"
    """Refuse requests of tenants with a budget (UNAVAILABLE, retryable)."""
    OPEN = "open"
    """Admit them against this replica's own count (may overshoot by the replica count)."""


class RedisTls(Section):
    """TLS to Redis (``rediss://`` URLs): the CA to trust and an optional client certificate."""

    ca_file: Path | None = None
    """PEM CA bundle Redis's certificate must chain to; unset: the system roots."""
    cert_file: Path | None = None
    """PEM client certificate (mutual TLS); set together with ``key_file``."""
    key_file: Path | None = None
    """PEM private key of ``cert_file``."""
    check_hostname: bool = True
    """Check Redis's certificate against the URL's host name."""

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("state.tls: cert_file and key_file go together")
        return self


class StateSettings(Section):
    """Where the router keeps state that every replica must agree on."""

    backend: StateBackend = StateBackend.MEMORY
    """``memory`` (one router) or ``redis`` (several replicas)."""
    url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    """Redis URL (``rediss://`` for TLS); no password in it: use ``password_file``."""
    tls: RedisTls | None = None
    """TLS details for a ``rediss://`` URL."""
    username: str | None = None
    """Redis ACL user (unset: the default user)."""
    password_file: Path | None = None
    """File holding Redis's password or auth token (a mounted Secret), read at start-up."""
    key_prefix: str = Field(default="tierroute:", pattern=r"^[A-Za-z0-9_.:-]{0,64}$")
    """Prefix of every key, so several deployments can share one Redis."""
    timeout_ms: float = Field(default=100.0, gt=0)
    """Deadline of one Redis operation (milliseconds), connection wait included; past it the
    operation counts as failed and the replica-local fallback decides."""
    connect_timeout_ms: float = Field(default=200.0, gt=0)
    """Deadline of opening a connection (milliseconds)."""
    max_connections: int = Field(default=32, ge=1)
    """Connections in the pool; callers beyond it wait (within ``timeout_ms``)."""
    probe_interval_seconds: float = Field(default=1.0, gt=0)
    """After a failure, Redis is skipped (local state serves) for this long, then tried again;
    requests do not each pay the timeout while it is down."""
    budget_fail: BudgetFailMode = BudgetFailMode.CLOSED
    """Budget checks while Redis is unreachable: ``closed`` refuses tenants with a budget."""
    reservation_ttl_seconds: float = Field(default=900.0, gt=0)
    """A reservation not settled within this (a replica died mid-request) stops holding budget."""
    stream_lease_seconds: float = Field(default=900.0, gt=0)
    """An open-stream slot not released within this (a replica died) frees itself."""
    max_pending: int = Field(default=100_000, ge=0)
    """Settlements and releases kept for replay while Redis is down; beyond it the oldest are
    dropped (and logged)."""
    samples_capacity: int = Field(default=20_000, ge=1)
    """Judged samples kept in the shared capped stream."""

    def password(self) -> str | None:
        """The password from ``password_file`` (whitespace trimmed), or ``None``."""
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"state.password_file: cannot read {self.password_file}: {exc}"
            ) from exc

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tls is not None and not self.url.startswith("rediss://"):
            raise ValueError("state.tls needs a rediss:// url")
        if self.backend is StateBackend.REDIS and self.password_file is not None:
            self.password()  # unreadable: fail at start-up, not on the first request
        return self
