"""API keys, tenants and their limits (no gRPC): who is calling, what may they do, how much.

Keys are configured as SHA-256 digests only (in the settings or a mounted secret file); a
presented key is hashed and compared with every configured digest in constant time. Each key maps
to a tenant with permissions (pin a tier, use STREAMING fallback), a cap on concurrent Generate
streams, a token-bucket request rate and an optional daily spend budget (``usd_per_day``,
checked against the tenant's cost of the current UTC day before any tier is called).

The servicer talks to a :class:`Gate` and the :class:`Caller` it hands out, and never asks
whether keys are on: :class:`TenantGate` authenticates and limits tenants; :class:`OpenGate`
(keys off) and the methods left open (``auth.open_methods``) hand out an :class:`OpenCaller`,
whose checks all pass and which is charged nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import structlog
import yaml
from pydantic import Field, TypeAdapter, field_validator, model_validator

from router_svc.ledger import DailySpend
from tierroute.config import Section
from tierroute.errors import OverloadedError, PermissionDeniedError, UnauthenticatedError

BEARER_PREFIX = "bearer "
Clock = Callable[[], float]


class TenantPermissions(Section):
    """What a tenant may ask for beyond a plain request."""

    pin_tier: bool = False
    """May set ``options.tier_hint`` (force a tier)."""
    streaming: bool = False
    """May use ``FALLBACK_MODE_STREAMING`` (tokens forwarded before the confidence is known)."""


class ApiKeySettings(Section):
    """One API key: the SHA-256 of the key (never the key), its tenant and limits."""

    tenant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Tenant name recorded in logs and the cost ledger."""
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    """Hex SHA-256 digest of the key (``printf %s "$KEY" | sha256sum``)."""
    permissions: TenantPermissions = TenantPermissions()
    max_concurrent_streams: int = Field(default=16, gt=0)
    """Generate streams this tenant may have open at once."""
    rate_per_second: float = Field(default=10.0, gt=0)
    """Sustained request rate (token-bucket refill per second)."""
    burst: int = Field(default=20, ge=1)
    """Bucket size: requests allowed at once after a quiet period."""
    usd_per_day: float | None = Field(default=None, gt=0)
    """Spend budget of the tenant per UTC day (US dollars, the ledger's cost); once spent,
    Generate is refused with RESOURCE_EXHAUSTED until 00:00 UTC. Unset: no budget. Give every
    key of a tenant the same value: the spend is the tenant's, the budget the key's."""

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class AuthSettings(Section):
    """API-key authentication of RouterService callers."""

    enabled: bool = False
    """Require ``authorization: Bearer <key>`` on RouterService calls."""
    keys: list[ApiKeySettings] = Field(default_factory=list)
    keys_file: Path | None = None
    """Optional YAML file (a mounted Kubernetes Secret) with more keys: a list of the same
    entries as ``keys``, or a mapping with a ``keys`` list. Read at start-up."""
    open_methods: list[str] = Field(default_factory=list)
    """RouterService methods callable without a key (for example ``ListTiers``). Health checking
    and reflection are separate services and are always open."""

    @model_validator(mode="after")
    def _check_keys(self) -> Self:
        if self.enabled and not self.keys and self.keys_file is None:
            raise ValueError("auth: enabled needs keys or keys_file")
        return self


_KEY_LIST = TypeAdapter(list[ApiKeySettings])


def load_keys(settings: AuthSettings) -> list[ApiKeySettings]:
    """The configured keys plus those of ``keys_file`` (validated like the settings)."""
    keys = list(settings.keys)
    if settings.keys_file is not None:
        data: Any = yaml.safe_load(settings.keys_file.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("keys", [])
        keys.extend(_KEY_LIST.validate_python(data or []))
    return keys


def hash_key(key: str) -> str:
    """The hex SHA-256 digest of an API key, as configured."""
    return hashlib.sha256(key.encode()).hexdigest()


class Caller(Protocol):
    """Who a call is from and the limits that apply to it; a refused check raises."""

    @property
    def name(self) -> str:
        """The tenant recorded in the ledger (for an open caller: its ``x-tenant`` label)."""
        ...

    def check_options(self, tier_hint: str, streaming: bool) -> None:
        """Refuse options the caller has no permission for (PERMISSION_DENIED)."""
        ...

    def check_budget(self) -> None:
        """Refuse a caller whose daily spend budget is used up (RESOURCE_EXHAUSTED)."""
        ...

    def admit(self) -> None:
        """Take one request from the caller's rate limit (RESOURCE_EXHAUSTED when over it)."""
        ...

    def open_stream(self) -> None:
        """Count one more open stream (RESOURCE_EXHAUSTED at the caller's maximum)."""
        ...

    def close_stream(self) -> None:
        """Release a stream counted by :meth:`open_stream`."""
        ...

    def charge(self, usd: float) -> None:
        """Add a finished request's cost to the caller's spend of today."""
        ...


class Gate(Protocol):
    """Turns a call's credentials into its :class:`Caller`."""

    def caller(self, method: str, authorization: str | None, label: str) -> Caller:
        """The caller of ``method`` (``authorization``: the header, ``label``: ``x-tenant``)."""
        ...


@dataclass(frozen=True)
class OpenCaller:
    """A caller no key identifies: every check passes and nothing is counted."""

    name: str

    def check_options(self, tier_hint: str, streaming: bool) -> None:
        """Every option is allowed (the policy may still refuse a tier hint)."""

    def check_budget(self) -> None:
        """No budget."""

    def admit(self) -> None:
        """No rate limit (the router's own stream limit still applies)."""

    def open_stream(self) -> None:
        """No per-caller stream limit."""

    def close_stream(self) -> None:
        """Nothing was counted."""

    def charge(self, usd: float) -> None:
        """Nobody to charge."""


class OpenGate:
    """The gate of a router without keys (``auth.enabled`` off): everyone is an open caller."""

    def caller(self, method: str, authorization: str | None, label: str) -> Caller:
        """An :class:`OpenCaller` named by the call's ``x-tenant`` label."""
        return OpenCaller(label)


@dataclass(frozen=True)
class Tenant:
    """An authenticated caller."""

    name: str
    key: ApiKeySettings

    def check_options(self, tier_hint: str, streaming: bool) -> None:
        """Refuse options the tenant has no permission for (PERMISSION_DENIED)."""
        if tier_hint and not self.key.permissions.pin_tier:
            raise PermissionDeniedError(f"options.tier_hint: tenant {self.name} may not pin a tier")
        if streaming and not self.key.permissions.streaming:
            raise PermissionDeniedError(
                f"options.fallback_mode: tenant {self.name} may not use STREAMING"
            )


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> float:
        """Take one token: 0.0 when granted, else the seconds until the next token."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


@dataclass
class _TenantState:
    bucket: TokenBucket
    streams: int = 0


@dataclass
class TenantGate:
    """Authenticates keys and enforces each tenant's rate and concurrency limits."""

    keys: list[ApiKeySettings]
    clock: Clock = time.monotonic
    open_methods: frozenset[str] = frozenset()
    """Methods callable without a key (``auth.open_methods``): their callers are open."""
    retry_after_seconds: float = 1.0
    """Delay suggested to a tenant refused for too many concurrent streams."""
    spend: DailySpend = field(default_factory=DailySpend)
    """Each tenant's cost today, for the spend budgets."""
    _states: dict[str, _TenantState] = field(default_factory=dict)
    _digests: list[tuple[bytes, ApiKeySettings]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._digests = [(bytes.fromhex(k.sha256), k) for k in self.keys]

    def authenticate(self, authorization: str | None) -> Tenant:
        """The tenant of an ``authorization`` value (``Bearer <key>``); UNAUTHENTICATED else."""
        if not authorization or not authorization[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX:
            raise UnauthenticatedError("missing API key: send 'authorization: Bearer <key>'")
        presented = hashlib.sha256(authorization[len(BEARER_PREFIX) :].strip().encode()).digest()
        found: ApiKeySettings | None = None
        # Every digest is compared (no early exit) so the time does not depend on which matched.
        for digest, key in self._digests:
            if hmac.compare_digest(presented, digest):
                found = key
        if found is None:
            raise UnauthenticatedError("unknown API key")
        return Tenant(found.tenant, found)

    def caller(self, method: str, authorization: str | None, label: str) -> Caller:
        """The authenticated tenant (bound to the log context), or an open caller when
        ``method`` is open; UNAUTHENTICATED without a valid key."""
        if method in self.open_methods:
            return OpenCaller(label)
        tenant = self.authenticate(authorization)
        structlog.contextvars.bind_contextvars(tenant=tenant.name)
        return _TenantCaller(self, tenant)

    def _state(self, tenant: Tenant) -> _TenantState:
        state = self._states.get(tenant.name)
        if state is None:
            bucket = TokenBucket(tenant.key.rate_per_second, tenant.key.burst, self.clock)
            state = self._states[tenant.name] = _TenantState(bucket)
        return state

    def admit(self, tenant: Tenant) -> None:
        """Take one request from the tenant's bucket; RESOURCE_EXHAUSTED when it is empty."""
        wait = self._state(tenant).bucket.take()
        if wait > 0:
            raise OverloadedError(
                f"tenant {tenant.name} over its rate of {tenant.key.rate_per_second:g} "
                f"requests/s (burst {tenant.key.burst})",
                retry_after_seconds=wait,
            )

    def check_budget(self, tenant: Tenant) -> None:
        """RESOURCE_EXHAUSTED (:class:`~router_svc.ledger.BudgetExhaustedError`) when the
        tenant's spend today reached its key's ``usd_per_day``."""
        if tenant.key.usd_per_day is not None:
            self.spend.check(tenant.name, tenant.key.usd_per_day)

    def charge(self, tenant: Tenant, usd: float) -> None:
        """Add a finished request's cost to the tenant's spend of today."""
        self.spend.charge(tenant.name, usd)

    def open_stream(self, tenant: Tenant) -> None:
        """Count one more open stream; RESOURCE_EXHAUSTED at the tenant's maximum.

        Every successful call must be paired with :meth:`close_stream`.
        """
        state = self._state(tenant)
        limit = tenant.key.max_concurrent_streams
        if state.streams >= limit:
            raise OverloadedError(
                f"tenant {tenant.name} has {state.streams} streams open (limit {limit})",
                retry_after_seconds=self.retry_after_seconds,
            )
        state.streams += 1

    def close_stream(self, tenant: Tenant) -> None:
        """Release a stream counted by :meth:`open_stream`."""
        self._state(tenant).streams -= 1

    def open_streams(self, tenant_name: str) -> int:
        """Streams the tenant has open now."""
        state = self._states.get(tenant_name)
        return 0 if state is None else state.streams


@dataclass(frozen=True)
class _TenantCaller:
    """An authenticated tenant, its checks and counts kept by its :class:`TenantGate`."""

    gate: TenantGate
    tenant: Tenant

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    def check_options(self, tier_hint: str, streaming: bool) -> None:
        """The tenant's permissions."""
        self.tenant.check_options(tier_hint, streaming)

    def check_budget(self) -> None:
        """The tenant's daily spend budget."""
        self.gate.check_budget(self.tenant)

    def admit(self) -> None:
        """The tenant's request rate."""
        self.gate.admit(self.tenant)

    def open_stream(self) -> None:
        """The tenant's concurrent streams."""
        self.gate.open_stream(self.tenant)

    def close_stream(self) -> None:
        """Release one of the tenant's streams."""
        self.gate.close_stream(self.tenant)

    def charge(self, usd: float) -> None:
        """Add to the tenant's spend of today."""
        self.gate.charge(self.tenant, usd)
