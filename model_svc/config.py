"""Settings of one model service process (``TIERROUTE_*`` environment, YAML file, flags).

Example environment: ``TIERROUTE_TIER=large``, ``TIERROUTE_ENGINE__MODEL=/models/qwen``,
``TIERROUTE_ENGINE__CPU_THREADS_BIND=1``, ``TIERROUTE_LIMITS__MAX_CONCURRENT_STREAMS=16``,
``TIERROUTE_AUTH__MODE=shared_secret`` with ``TIERROUTE_AUTH__SHARED_SECRET_FILE=/secrets/peer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Self

from pydantic import Field, model_validator

from model_svc.confidence import ConfidenceParams
from tierroute.catalog import CATALOG
from tierroute.config import LoggingSettings, Section, ServerSettings, Settings, SharedSecret
from tierroute.errors import FailedPreconditionError
from tierroute.paths import default_cache_dir, models_dir

SEED_PRICES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {"small": (0.05, 0.10), "large": (0.50, 1.50), "xl": (1.00, 3.00)}
)
"""Illustrative list prices (USD per 1M input, output tokens) of the embedded tiers."""


class EngineSettings(Section):
    """The inference engine (vLLM ``AsyncEngineArgs`` plus the CPU build's knobs)."""

    model: Path | None = None
    """Hugging Face model folder; unset: the tier's prepared folder (``models prepare``)."""
    served_name: str | None = None
    """Name reported to callers; unset: the model folder's name."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    """Weights and activations type."""
    max_model_len: int = Field(default=2048, gt=0)
    """Context length: prompt plus completion (tokens)."""
    max_num_seqs: int = Field(default=32, gt=0)
    """Sequences the engine batches at once."""
    enforce_eager: bool = True
    """Skip graph capture / torch.compile (on the CPU it only slowed start-up)."""
    tensor_parallel_size: int = Field(default=1, gt=0)
    """GPUs one replica spans."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """Share of GPU memory vLLM may take (GPU builds only)."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes."""
    kv_cache_gib: int = Field(default=1, gt=0)
    """KV cache size on the CPU (GiB; ``VLLM_CPU_KVCACHE_SPACE``)."""
    cpu_threads_bind: str = "auto"
    """Cores of the CPU worker (``VLLM_CPU_OMP_THREADS_BIND``), e.g. "0" for one tier and
    "1" for another so that two engines on one machine do not fight over cores."""
    warmup_max_tokens: int = Field(default=4, ge=1)
    """Tokens of the warm-up generation that must succeed before health turns SERVING."""
    health_interval_seconds: float = Field(default=1.0, gt=0)
    """How often the engine's liveness is checked."""
    text_prompts: Literal["chat", "raw"] = "chat"
    """How a plain-text prompt (``Prompt.text``) reaches the model: ``chat`` renders it as one
    user turn of the model's chat template (instruct models given bare text often stop at
    once with an empty answer), ``raw`` passes it as is (raw completion, e.g. continuing
    code). Chat prompts always use the template; a model without one always gets raw text."""
    shutdown_timeout_seconds: float = Field(default=3.0, ge=0)
    """After draining, how long the engine processes get to exit before they are killed
    (the CPU worker never exits on its own and would otherwise hold shutdown for vLLM's 5 s)."""


class PriceSettings(Section):
    """Prices of this tier; unset fields take the tier's seed price (``SEED_PRICES``)."""

    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    """Prompt tokens (US dollars per 1,000,000 tokens)."""
    output_usd_per_mtok: float | None = Field(default=None, ge=0)
    """Generated tokens (US dollars per 1,000,000 tokens)."""


class LimitSettings(Section):
    """Admission limits."""

    max_concurrent_streams: int = Field(default=32, gt=0)
    """Generate streams served at once; more get RESOURCE_EXHAUSTED with RetryInfo."""
    max_tokens: int = Field(default=1024, gt=0)
    """Largest accepted ``SamplingParams.max_tokens``."""
    default_max_tokens: int = Field(default=256, gt=0)
    """``max_tokens`` used when a request leaves it at 0."""
    retry_after_seconds: float = Field(default=0.5, ge=0)
    """Back-off suggested to callers turned away as overloaded."""
    max_stop_strings: int = Field(default=8, ge=0)
    """Stop strings accepted per request."""
    max_prompt_tokens: int | None = Field(default=None, gt=0)
    """Longest prompt accepted, counted after tokenizing (chat template included); longer
    prompts get INVALID_ARGUMENT. Unset: only the context length bounds it."""

    @model_validator(mode="after")
    def _default_within_cap(self) -> Self:
        if self.default_max_tokens > self.max_tokens:
            raise ValueError("limits.default_max_tokens must not exceed limits.max_tokens")
        return self


PeerAuthMode = Literal["none", "shared_secret", "mtls"]
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


class PeerAuthSettings(SharedSecret):
    """Who may call this model service: anyone, holders of the shared secret, or mTLS peers.

    - ``none``: no check (a trusted network, local runs, tests).
    - ``shared_secret``: calls need ``authorization: Bearer <secret>`` (the router sends it);
      the secret comes from ``shared_secret_file`` or ``TIERROUTE_AUTH__SHARED_SECRET``.
    - ``mtls``: the TLS handshake requires a client certificate signed by
      ``server.tls.client_ca_file`` (give that CA to the router only); ``allowed_peer_sans``
      further pins the certificate's DNS/URI names (the router's identity).

    ``shared_secret_file`` is re-read when it changes (rotation without a restart).
    """

    mode: PeerAuthMode = "none"
    open_services: list[str] = Field(default_factory=lambda: list(OPEN_SERVICES))
    """Services callable without the shared secret (health checks, reflection). Under
    ``mtls`` the handshake itself needs the certificate, so nothing is open."""
    allowed_peer_sans: list[str] = Field(default_factory=list, max_length=64)
    """DNS or URI subject alternative names a client certificate must carry one of (e.g.
    ``router.tierroute.svc`` or a SPIFFE URI); others get PERMISSION_DENIED. Empty: any
    certificate of ``server.tls.client_ca_file``. Needs ``require_client_auth``."""
    previous_secret_seconds: float = Field(default=300.0, ge=0)
    """After ``shared_secret_file`` changes, how long the previous secret is still accepted
    (seconds): the router's copy of a rotated Secret is refreshed on its own schedule."""


class ConfidenceSettings(Section):
    """Logistic calibration of the confidence (see ``model_svc/confidence.py``)."""

    bias: float = 2.5
    """Intercept of the logistic."""
    weight_mean: float = Field(default=2.0, ge=0)
    """Weight of the length-corrected mean log-probability (per nat)."""
    weight_min_window: float = Field(default=0.5, ge=0)
    """Weight of the lowest sliding-window mean log-probability (per nat)."""
    penalty_low_prob: float = Field(default=2.0, ge=0)
    """Penalty per unit share of low-probability tokens."""
    window_tokens: int = Field(default=8, ge=1)
    """Sliding window length (tokens)."""
    low_prob_threshold: float = Field(default=0.1, gt=0, lt=1)
    """Probability below which a token counts as low-probability."""
    prior_tokens: float = Field(default=2.0, ge=0)
    """Pseudo-tokens of the length correction."""
    prior_logprob: float = Field(default=-1.0, le=0)
    """Log-probability the pseudo-tokens carry (nats)."""

    def params(self) -> ConfidenceParams:
        """The domain parameters."""
        return ConfidenceParams(**self.model_dump())


class ModelServiceSettings(Settings):
    """Everything one ``model_svc`` process is configured with."""

    tier: str = Field(default="small", pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")
    """Tier this process serves ("small", "large", ...); a metrics label, so kept short."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Where ``tierroute models prepare`` put the models (``TIERROUTE_CACHE_DIR``)."""
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    engine: EngineSettings = EngineSettings()
    prices: PriceSettings = PriceSettings()
    limits: LimitSettings = LimitSettings()
    confidence: ConfidenceSettings = ConfidenceSettings()
    auth: PeerAuthSettings = PeerAuthSettings()
    """Who may call (the router only, in a deployment)."""

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        auth = self.auth
        if auth.mode == "shared_secret" and auth.secret() is None:
            raise ValueError(
                "auth.mode shared_secret needs auth.shared_secret_file or "
                "TIERROUTE_AUTH__SHARED_SECRET"
            )
        tls = self.server.tls
        if auth.allowed_peer_sans and (tls is None or not tls.require_client_auth):
            raise ValueError(
                "auth.allowed_peer_sans needs server.tls with client_ca_file and "
                "require_client_auth: true"
            )
        mutual = tls is not None and tls.client_ca_file is not None and tls.require_client_auth
        if auth.mode == "mtls" and not mutual:
            raise ValueError(
                "auth.mode mtls needs server.tls with client_ca_file and require_client_auth: true"
            )
        return self

    def model_path(self) -> Path:
        """The model folder: ``engine.model``, else the prepared folder of the tier."""
        if self.engine.model is not None:
            return self.engine.model
        spec = CATALOG.get(self.tier)
        if spec is None:
            raise FailedPreconditionError(
                f"tier {self.tier!r} has no embedded model: set engine.model "
                f"(TIERROUTE_ENGINE__MODEL) or use one of {', '.join(CATALOG)}"
            )
        path = models_dir(self.cache_dir) / spec.folder
        if not path.is_dir():
            raise FailedPreconditionError(
                f"{spec.name} is not prepared at {path}: "
                f"run `tierroute models prepare --tier {self.tier}`"
            )
        return path

    def served_name(self) -> str:
        """The name callers see: ``engine.served_name``, else the model folder's name."""
        if self.engine.served_name:
            return self.engine.served_name
        if self.engine.model is not None:
            return self.engine.model.name
        spec = CATALOG.get(self.tier)
        return spec.folder if spec is not None else self.tier

    def prices_usd_per_mtok(self) -> tuple[float, float]:
        """(input, output) prices per 1M tokens, seed prices filling unset fields."""
        seed = SEED_PRICES.get(self.tier)
        given = (self.prices.input_usd_per_mtok, self.prices.output_usd_per_mtok)
        if seed is None and None in given:
            raise FailedPreconditionError(
                f"tier {self.tier!r} has no seed prices: set prices.input_usd_per_mtok "
                "and prices.output_usd_per_mtok"
            )
        fallback = seed or (0.0, 0.0)
        return (
            given[0] if given[0] is not None else fallback[0],
            given[1] if given[1] is not None else fallback[1],
        )
