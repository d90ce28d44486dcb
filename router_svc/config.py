"""The router's settings: tiers (cheapest first), policy, classifier, rules, limits, auth...

Transport to the tiers: ``tier_tls`` is every tier's TLS (CA, client certificate for mutual
TLS, server-name override) and ``tier_auth`` the shared secret sent to model services that
require one; a tier's own ``tls`` or ``auth`` replaces them for that tier. After loading, each
tier carries its effective values.

Loaded once at start-up with :meth:`RouterSettings.load` (YAML file, ``TIERROUTE_*`` environment
variables, overrides) and validated there, so a bad configuration fails before serving.
"""

from __future__ import annotations

import itertools
from typing import Self

from pydantic import Field, model_validator

from router_svc.auth import AuthSettings
from router_svc.cascade import FallbackModeName
from router_svc.classifier import ClassifierSettings
from router_svc.quality.settings import QualitySettings
from router_svc.rules import RulesSettings
from router_svc.shadow import ShadowSettings
from router_svc.start_tier.settings import StartTierSettings
from router_svc.state.settings import StateSettings
from router_svc.workers import WorkerSettings
from tierroute.config import (
    ClientTls,
    LoggingSettings,
    Section,
    ServerSettings,
    Settings,
    SharedSecret,
)
from tierroute.judges.settings import JudgeSettings

TIER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class TierSettings(Section):
    """One model tier: its name, replicas and prices."""

    name: str = Field(pattern=TIER_NAME_PATTERN)
    """Tier name shown in decisions, metrics and logs (for example ``small``)."""
    endpoints: list[str] = Field(min_length=1)
    """gRPC targets of the tier's model services: ``host:port`` or ``dns:///name:port`` (a
    Kubernetes headless service: every resolved address is used, round-robin)."""
    input_usd_per_mtok: float = Field(ge=0)
    """Price of prompt tokens (US dollars per 1,000,000 tokens)."""
    output_usd_per_mtok: float = Field(ge=0)
    """Price of generated tokens (US dollars per 1,000,000 tokens)."""
    timeout_seconds: float = Field(default=120.0, gt=0)
    """Upper bound of one call to this tier (seconds); the caller's deadline may cut it shorter."""
    tls: ClientTls | None = None
    """TLS to this tier's model services; unset: ``tier_tls``; ``{enabled: false}``: plaintext."""
    auth: SharedSecret | None = None
    """Shared secret for this tier's model services; unset: ``tier_auth``."""


def _default_tiers() -> list[TierSettings]:
    # Two loopback tiers so `python -m router_svc` starts without a file; real deployments
    # configure their own endpoints and prices.
    return [
        TierSettings(
            name="small",
            endpoints=["127.0.0.1:50061"],
            input_usd_per_mtok=0.05,
            output_usd_per_mtok=0.10,
        ),
        TierSettings(
            name="large",
            endpoints=["127.0.0.1:50062"],
            input_usd_per_mtok=0.50,
            output_usd_per_mtok=1.50,
        ),
    ]


class PolicySettings(Section):
    """How a tier is chosen and when an answer escalates."""

    classifier_threshold: float | None = Field(default=None, ge=0, le=1)
    """Scores at or above go to the cheapest tier, below to the largest; ``None`` takes the
    calibrated default from the classifier artefact's card (0.5 without a classifier)."""
    classifier_largest_below: float | None = Field(default=None, ge=0, le=1)
    """Only scores below this go straight to the largest tier; between it and
    ``classifier_threshold`` the classifier is not sure, and the request starts at the
    cheapest tier for the cascade to decide from the answer (the classifier then never costs
    a needless largest-tier call on traffic unlike its training data). ``None``: the threshold
    (below it, the largest tier)."""
    classifier_timeout_ms: float = Field(default=8.0, ge=0)
    """Longest wait for the classifier (milliseconds); past it the default tier serves, so the
    decision stays within budget when the classifier is overloaded. 0: no limit."""
    default_tier: str | None = None
    """Tier when neither a rule nor the classifier decides; ``None`` means the cheapest."""
    fallback_threshold: float = Field(default=0.65, ge=0, le=1)
    """A tier's confidence below this escalates to the next tier."""
    fallback_mode: FallbackModeName = FallbackModeName.BUFFERED
    """Cascade mode when the request does not choose one."""
    early_window_tokens: int = Field(default=16, ge=1, le=4096)
    """K: tokens held in EARLY_WINDOW mode before deciding from their running confidence."""
    allow_tier_hint: bool = True
    """Honour ``RouteOptions.tier_hint``; when off, a hint is refused with PERMISSION_DENIED."""


class LimitsSettings(Section):
    """Admission limits of the router."""

    max_concurrent_streams: int = Field(default=256, gt=0)
    """Generate streams served at once; more get RESOURCE_EXHAUSTED with RetryInfo."""
    max_prompt_bytes: int = Field(default=64 * 1024, gt=0)
    """Largest prompt accepted (UTF-8 bytes of all message contents); the model services
    may also cap prompt tokens (their ``limits.max_prompt_tokens``)."""
    max_tokens: int = Field(default=1024, gt=0)
    """Largest ``SamplingParams.max_tokens`` accepted (tokens)."""
    retry_after_seconds: float = Field(default=1.0, gt=0)
    """Delay suggested to callers refused for overload (seconds)."""


class ResilienceSettings(Section):
    """Retries, circuit breakers and health checks of the tier clients."""

    retries: int = Field(default=2, ge=0, le=10)
    """Extra attempts on a tier before its first token (another replica when there is one)."""
    backoff_initial_seconds: float = Field(default=0.05, ge=0)
    """First retry delay cap; each attempt waits a uniform random time below the cap."""
    backoff_max_seconds: float = Field(default=1.0, ge=0)
    """Largest retry delay cap (seconds); the cap doubles per attempt up to this."""
    circuit_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures of an endpoint that open its circuit."""
    circuit_reset_seconds: float = Field(default=10.0, gt=0)
    """Time an open circuit waits before letting one half-open probe through (seconds)."""
    health_check_interval_seconds: float = Field(default=5.0, ge=0)
    """Period of the ``grpc.health.v1`` checks of every endpoint; 0 disables them."""
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)
    """Deadline of one health check (seconds). NOT_SERVING or an unreachable endpoint opens
    the circuit at once; a check that times out counts as one failure towards
    ``circuit_failure_threshold`` (a busy endpoint is not a dead one)."""


class RouterClassifierSettings(ClassifierSettings):
    """The classifier's settings plus whether to load it at all."""

    enabled: bool = True
    """Load the ONNX classifier; when off, only rules, tier hints and the default tier decide."""


class RouterSettings(Settings):
    """Everything ``python -m router_svc`` reads at start-up."""

    server: ServerSettings = ServerSettings(port=50060)
    logging: LoggingSettings = LoggingSettings()
    tiers: list[TierSettings] = Field(default_factory=_default_tiers, min_length=2)
    """Model tiers, cheapest first."""
    policy: PolicySettings = PolicySettings()
    classifier: RouterClassifierSettings = Field(default_factory=RouterClassifierSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    limits: LimitsSettings = LimitsSettings()
    resilience: ResilienceSettings = ResilienceSettings()
    shadow: ShadowSettings = ShadowSettings()
    quality: QualitySettings = Field(default_factory=QualitySettings)
    """The quality loop (judged samples, learned escalation score, controlled thresholds); off
    by default. With it on, ``shadow.max_in_flight`` bounds the judged samples in flight."""
    workers: WorkerSettings = WorkerSettings()
    """Router processes sharing the port (``count: auto``: one per core given); 1: this one."""
    start_tier: StartTierSettings = Field(default_factory=StartTierSettings)
    """The learned start tier (off by default): where a request starts, learned from the
    cascade's outcomes, with the classifier's score as its prior."""
    judges: JudgeSettings = Field(default_factory=JudgeSettings)
    """Which judge decides a sampled answer (per route, per tenant, default, fallbacks)."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """API keys of RouterService callers (off by default)."""
    state: StateSettings = StateSettings()
    """Where budgets, rate limits and open streams are counted: this process (default) or
    Redis, shared by every replica (``backend: redis``)."""
    tier_tls: ClientTls | None = None
    """TLS of every tier's channels unless the tier sets its own ``tls``; unset: plaintext."""
    tier_auth: SharedSecret = SharedSecret()
    """Shared secret sent to the model services (``TIERROUTE_TIER_AUTH__SHARED_SECRET`` or
    ``shared_secret_file``); unset: none sent."""

    @model_validator(mode="after")
    def _check_tiers(self) -> Self:
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tiers: names must be unique, got {names}")
        # "Cheapest first" is what escalation relies on: the next tier is the next dearer one.
        blended = [t.input_usd_per_mtok + t.output_usd_per_mtok for t in self.tiers]
        if any(later < earlier for earlier, later in itertools.pairwise(blended)):
            raise ValueError("tiers: must be ordered cheapest first (input + output price)")
        if self.policy.default_tier is not None and self.policy.default_tier not in names:
            raise ValueError(f"policy.default_tier: unknown tier {self.policy.default_tier!r}")
        return self

    @model_validator(mode="after")
    def _inherit_transport(self) -> Self:
        # Each tier gets its effective TLS and secret, so the tier clients need only their own
        # settings. The sections are frozen; the list holding them is replaced item by item.
        for index, tier in enumerate(self.tiers):
            update: dict[str, object] = {}
            if tier.tls is None and self.tier_tls is not None:
                update["tls"] = self.tier_tls
            if tier.auth is None:
                update["auth"] = self.tier_auth
            if update:
                self.tiers[index] = tier.model_copy(update=update)
        return self

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Configured tier names, cheapest first."""
        return tuple(tier.name for tier in self.tiers)
