"""API keys, tenants and their limits (no gRPC): who is calling, what may they do, how much.

Keys are configured as SHA-256 digests only (in the settings or a mounted secret file); a
presented key is hashed and compared with every configured digest in constant time. Each key maps
to a tenant with permissions over every way a request can spend more (pin a tier; the STREAMING
and EARLY_WINDOW fallback modes, which forward tokens that may later be discarded; a
``fallback_threshold`` above the tenant's bound, which sends requests up the chain), a cap on
concurrent Generate streams, a token-bucket request rate and an optional daily spend budget
(``usd_per_day``: the request's worst case is reserved before any tier is called and settled to
its real cost when it ends). Counts live in the router's state store
(:mod:`router_svc.state`): in this process, or in Redis, shared by every replica.

The servicer talks to a :class:`Gate` and the :class:`Caller` it hands out, and never asks
whether keys are on: :class:`TenantGate` authenticates and limits tenants; :class:`OpenGate`
(keys off) and the methods left open (``auth.open_methods``) hand out an :class:`OpenCaller`,
whose checks all pass and which is charged nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import structlog
import yaml
from pydantic import Field, TypeAdapter, field_validator, model_validator

from router_svc.cascade import FallbackModeName
from router_svc.state.memory import InProcessState, TokenBucket
from router_svc.state.store import Reservation, RouterState, StreamSlot
from tierroute.config import Section
from tierroute.errors import OverloadedError, PermissionDeniedError, UnauthenticatedError

BEARER_PREFIX = "bearer "
__all__ = [
    "ApiKeySettings",
    "AuthSettings",
    "Caller",
    "Gate",
    "OpenCaller",
    "OpenGate",
    "RequestedOptions",
    "Tenant",
    "TenantGate",
    "TokenBucket",
    "hash_key",
    "load_keys",
]


class TenantPermissions(Section):
    """What a tenant may ask for beyond a plain request."""

    pin_tier: bool = False
    """May set ``options.tier_hint`` (force a tier)."""
    streaming: bool = False
    """May use ``FALLBACK_MODE_STREAMING`` (tokens forwarded before the confidence is known)."""
    early_window: bool = False
    """May use ``FALLBACK_MODE_EARLY_WINDOW`` (the first K tokens' running confidence decides;
    tokens may also be forwarded and later discarded)."""
    max_fallback_threshold: float | None = Field(default=None, ge=0, le=1)
    """Highest ``options.fallback_threshold`` the tenant may send (a higher threshold escalates
    more requests to dearer tiers). Unset: the router's ``policy.fallback_threshold``, so a
    tenant may lower its escalation but not raise it; 1.0 allows any value."""


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


@dataclass(frozen=True, slots=True)
class RequestedOptions:
    """The options of a request that may cost more, as the caller's permissions see them."""

    tier_hint: str = ""
    mode: FallbackModeName | None = None
    """The fallback mode asked for (``None``: the server default)."""
    fallback_threshold: float | None = None
    """The escalation threshold asked for (``None``: the server's)."""


class Caller(Protocol):
    """Who a call is from and the limits that apply to it; a refused check raises.

    One caller per call: it holds the call's budget reservation and stream slot, and
    :meth:`close` settles and releases them.
    """

    @property
    def name(self) -> str:
        """The tenant recorded in the ledger (for an open caller: its ``x-tenant`` label)."""
        ...

    def check_options(self, options: RequestedOptions) -> None:
        """Refuse options the caller has no permission for (PERMISSION_DENIED)."""
        ...

    async def check_budget(self) -> None:
        """Refuse a caller whose daily spend budget is used up (RESOURCE_EXHAUSTED)."""
        ...

    async def admit(self) -> None:
        """Take one request from the caller's rate limit (RESOURCE_EXHAUSTED when over it)."""
        ...

    async def open_stream(self) -> None:
        """Count one more open stream (RESOURCE_EXHAUSTED at the caller's maximum)."""
        ...

    async def reserve(self, worst_case_usd: float) -> None:
        """Hold the request's worst-case cost of today's budget (RESOURCE_EXHAUSTED when spend
        plus what other requests hold reached it), before any tier is called."""
        ...

    def charge(self, usd: float) -> None:
        """The request's real cost (wasted escalation tokens included), settled by :meth:`close`."""
        ...

    async def close(self) -> None:
        """Settle the reservation to the charged cost and release the stream (idempotent)."""
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

    def check_options(self, options: RequestedOptions) -> None:
        """Every option is allowed (the policy may still refuse a tier hint)."""

    async def check_budget(self) -> None:
        """No budget."""

    async def admit(self) -> None:
        """No rate limit (the router's own stream limit still applies)."""

    async def open_stream(self) -> None:
        """No per-caller stream limit."""

    async def reserve(self, worst_case_usd: float) -> None:
        """No budget to hold."""

    def charge(self, usd: float) -> None:
        """Nobody to charge."""

    async def close(self) -> None:
        """Nothing was counted."""


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

    def check_options(self, options: RequestedOptions, default_max_threshold: float = 1.0) -> None:
        """Refuse options the tenant has no permission for (PERMISSION_DENIED, naming the
        option and, for a bound, the bound); ``default_max_threshold`` applies when the key
        sets no ``max_fallback_threshold``."""
        allowed = self.key.permissions
        if options.tier_hint and not allowed.pin_tier:
            raise PermissionDeniedError(f"options.tier_hint: tenant {self.name} may not pin a tier")
        if options.mode is FallbackModeName.STREAMING and not allowed.streaming:
            raise PermissionDeniedError(
                f"options.fallback_mode: tenant {self.name} may not use STREAMING"
            )
        if options.mode is FallbackModeName.EARLY_WINDOW and not allowed.early_window:
            raise PermissionDeniedError(
                f"options.fallback_mode: tenant {self.name} may not use EARLY_WINDOW"
            )
        bound = allowed.max_fallback_threshold
        if bound is None:
            bound = default_max_threshold
        if options.fallback_threshold is not None and options.fallback_threshold > bound:
            raise PermissionDeniedError(
                f"options.fallback_threshold: {options.fallback_threshold:g} is over tenant "
                f"{self.name}'s bound of {bound:g} (permissions.max_fallback_threshold)"
            )


@dataclass
class TenantGate:
    """Authenticates keys and enforces each tenant's permissions, rate, streams and budget."""

    keys: list[ApiKeySettings]
    state: RouterState = field(default_factory=InProcessState)
    """Where budgets, buckets and stream counts live (this process, or Redis)."""
    open_methods: frozenset[str] = frozenset()
    """Methods callable without a key (``auth.open_methods``): their callers are open."""
    retry_after_seconds: float = 1.0
    """Delay suggested to a tenant refused for too many concurrent streams."""
    default_max_fallback_threshold: float = 1.0
    """Bound of ``options.fallback_threshold`` for keys without ``max_fallback_threshold``
    (the server passes its ``policy.fallback_threshold``)."""
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
        return TenantCaller(self, tenant)

    async def admit(self, tenant: Tenant) -> None:
        """Take one request from the tenant's bucket; RESOURCE_EXHAUSTED when it is empty."""
        wait = await self.state.take(tenant.name, tenant.key.rate_per_second, tenant.key.burst)
        if wait > 0:
            raise OverloadedError(
                f"tenant {tenant.name} over its rate of {tenant.key.rate_per_second:g} "
                f"requests/s (burst {tenant.key.burst})",
                retry_after_seconds=wait,
            )

    async def check_budget(self, tenant: Tenant) -> None:
        """RESOURCE_EXHAUSTED (:class:`~router_svc.ledger.BudgetExhaustedError`) when the
        tenant's spend today (plus what its running requests hold) reached ``usd_per_day``."""
        if tenant.key.usd_per_day is not None:
            await self.state.check_budget(tenant.name, tenant.key.usd_per_day)

    async def reserve(self, tenant: Tenant, worst_case_usd: float) -> Reservation:
        """Hold ``worst_case_usd`` of the tenant's budget (a zero ticket without a budget)."""
        if tenant.key.usd_per_day is None:
            return self.state.ticket(tenant.name)
        return await self.state.reserve(tenant.name, tenant.key.usd_per_day, worst_case_usd)

    async def open_stream(self, tenant: Tenant) -> StreamSlot:
        """One more open stream; RESOURCE_EXHAUSTED at the tenant's maximum."""
        limit = tenant.key.max_concurrent_streams
        slot, count = await self.state.open_stream(tenant.name, limit)
        if slot is None:
            raise OverloadedError(
                f"tenant {tenant.name} has {count} streams open (limit {limit})",
                retry_after_seconds=self.retry_after_seconds,
            )
        return slot

    async def open_streams(self, tenant_name: str) -> int:
        """Streams the tenant has open now."""
        return await self.state.open_streams(tenant_name)

    async def spent(self, tenant_name: str) -> float:
        """US dollars the tenant spent today (settled requests)."""
        return await self.state.spent(tenant_name)


class TenantCaller:
    """An authenticated tenant for one call: its checks, its reservation and its stream slot."""

    def __init__(self, gate: TenantGate, tenant: Tenant) -> None:
        self.gate = gate
        self.tenant = tenant
        self._reservation: Reservation | None = None
        self._slot: StreamSlot | None = None
        self._cost = 0.0
        self._charged = False

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    def check_options(self, options: RequestedOptions) -> None:
        """The tenant's permissions."""
        self.tenant.check_options(options, self.gate.default_max_fallback_threshold)

    async def check_budget(self) -> None:
        """The tenant's daily spend budget (a cheap check before the rate limit)."""
        await self.gate.check_budget(self.tenant)

    async def admit(self) -> None:
        """The tenant's request rate."""
        await self.gate.admit(self.tenant)

    async def open_stream(self) -> None:
        """The tenant's concurrent streams."""
        self._slot = await self.gate.open_stream(self.tenant)

    async def reserve(self, worst_case_usd: float) -> None:
        """Hold the request's worst case of the tenant's budget."""
        self._reservation = await self.gate.reserve(self.tenant, worst_case_usd)

    def charge(self, usd: float) -> None:
        """The request's real cost, settled at :meth:`close`."""
        self._cost += usd
        self._charged = True

    async def close(self) -> None:
        """Settle the reservation to the charged cost (releasing it when nothing was charged)
        and release the stream slot; the second call does nothing."""
        reservation, self._reservation = self._reservation, None
        slot, self._slot = self._slot, None
        if reservation is None and self._charged:
            # Charged without a reservation (refused after the tiers started): still paid.
            reservation = self.gate.state.ticket(self.tenant.name)
        self._charged = False
        if reservation is not None:
            await self.gate.state.settle(reservation, self._cost)
        if slot is not None:
            await self.gate.state.close_stream(slot)
