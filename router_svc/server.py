"""Wiring of the router process: builds every object, injects them, starts and stops.

Nothing here decides anything: the policy, cascade, tier clients and ledger are built from the
settings and handed to the servicer; the shared :class:`~tierroute.server.ServerBootstrap`
serves it with health, reflection and ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector

from router_svc.auth import Gate, OpenGate, TenantGate, load_keys
from router_svc.classifier import (
    Classifier,
    LoadedClassifier,
    load_classifier,
    load_static_embedding,
)
from router_svc.config import RouterSettings
from router_svc.costs import Prices
from router_svc.feedback import RecentRequests
from router_svc.judge_ask import tier_ask
from router_svc.judged_samples import JudgedSampler, ServedRequest
from router_svc.ledger import CostLedger
from router_svc.metrics import RouterMetrics
from router_svc.policy import RoutingPolicy
from router_svc.quality import QualityLoop, QualityMetrics
from router_svc.quality.samples import SampleStore
from router_svc.quality_hook import QualityHook, QualityOff, QualityOn
from router_svc.rules import RuleSet
from router_svc.servicer import RouterServicer
from router_svc.shadow import ShadowSampler
from router_svc.start_tier import (
    CheapFeatures,
    Featurizer,
    StartTierLearner,
    StartTierMetrics,
    TierPrice,
    WithEmbedding,
    open_learner,
)
from router_svc.state.factory import (
    open_state,
    shared_sample_store,
    shared_start_tier_outcomes,
)
from router_svc.state.memory import InProcessState
from router_svc.state.start_tier_outcomes import SharedStartTierOutcomes
from router_svc.state.store import RouterState
from router_svc.tiers import TierPool
from tierroute.judges import build_judges
from tierroute.judges.feedback import NAME as FEEDBACK
from tierroute.judges.settings import JUDGE_NAMES
from tierroute.server import ServerBootstrap, ServiceBinding
from tierroute.v1 import router_service_pb2, router_service_pb2_grpc

SERVICE_NAME = router_service_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name
_FALLBACK_THRESHOLD = 0.5  # classifier threshold reported when there is no classifier
_log = structlog.get_logger("router_svc.server")


@dataclass
class RouterApp:
    """A wired router: start it, then stop it."""

    settings: RouterSettings
    bootstrap: ServerBootstrap
    tiers: TierPool
    classifier: LoadedClassifier | None
    metrics: RouterMetrics
    registry: CollectorRegistry
    shadow: ShadowSampler
    gate: Gate
    """API keys and per-tenant limits (a :class:`TenantGate`, ``auth.enabled``), else open."""
    servicer: RouterServicer
    quality: QualityHook
    """The quality loop (:class:`QualityOn` once :meth:`ready` opened it), else the null one."""
    start_tier: StartTierLearner | None = None
    """The learned start tier (``start_tier.enabled``), saved at shutdown."""
    state: RouterState = field(default_factory=InProcessState)
    """Budgets, rate limits and open streams (in-process, or Redis: ``state.backend``)."""
    start_tier_sync: SharedStartTierOutcomes | None = None
    """The start tier's outcomes shared with the other replicas (Redis backend, once ready)."""

    @property
    def port(self) -> int:
        """The bound gRPC port (after :meth:`start`)."""
        return self.bootstrap.port

    async def start(self) -> None:
        """Serve and report SERVING; the tier health checks start too."""
        await self.bootstrap.start()
        await self.ready()
        await self.bootstrap.set_serving(True)

    async def ready(self) -> None:
        """Warm the classifier up and start the tier health checks (before SERVING).

        Tier health is watched, not awaited: a router with a tier down still serves (the
        cascade falls back or degrades), so readiness does not depend on the tiers.
        """
        if self.classifier is not None:
            # The first session run is slow (allocations): keep it out of a caller's budget.
            await self.classifier.score("warm-up")
        self.tiers.start()
        if self.start_tier is not None and self.start_tier_sync is None:
            self.start_tier_sync = shared_start_tier_outcomes(
                self.state,
                self.settings.state,
                self.start_tier,
                self.settings.start_tier.share_interval_seconds,
            )
            if self.start_tier_sync is not None:
                self.start_tier_sync.start()
        if self.settings.quality.enabled and not self.quality.enabled:
            # Opened here, not in build_router: loading the saved state is awaited I/O. Requests
            # taken before (the server is not SERVING yet) are simply not judged.
            self.quality = await open_quality(
                self.settings,
                self.tiers,
                self.metrics,
                self.registry,
                self.start_tier,
                shared_sample_store(self.state, self.settings.state),
            )
            self.servicer.attach_quality(self.quality)
            self.quality.start()

    async def stop(self) -> None:
        """Drain in-flight streams, then close the tier channels and the classifier."""
        try:
            await self.bootstrap.stop()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Release the shadows, tier channels and the classifier (after the server stopped)."""
        await self.shadow.close()
        # After the server stopped: no request can add a sample while the state is saved.
        await self.quality.close()
        await self.tiers.close()
        if self.start_tier_sync is not None:
            await self.start_tier_sync.close()
        await self.state.close()
        if self.start_tier is not None:
            self.start_tier.close()
        if self.classifier is not None:
            self.classifier.close()
            self.classifier = None


def build_router(
    settings: RouterSettings,
    classifier: Classifier | None = None,
) -> RouterApp:
    """Build the router from ``settings``.

    ``classifier`` replaces the configured one (tests); otherwise the configured encoder's
    classifier (``classifier.encoder``: static or minilm) is loaded when ``classifier.enabled``.
    """
    registry = CollectorRegistry(auto_describe=True)
    # process_resident_memory_bytes and open fds: what a leak or an fd exhaustion shows on.
    ProcessCollector(registry=registry)
    onnx: LoadedClassifier | None = None
    if classifier is None and settings.classifier.enabled:
        onnx = load_classifier(settings.classifier)
        classifier = onnx
    threshold = settings.policy.classifier_threshold
    if threshold is None:
        threshold = onnx.default_threshold if onnx is not None else _FALLBACK_THRESHOLD
    names = settings.tier_names
    rules = RuleSet(settings.rules) if settings.rules.enabled else None
    start_tier = None
    if settings.start_tier.enabled:
        start_tier = open_learner(
            names,
            [TierPrice(t.input_usd_per_mtok, t.output_usd_per_mtok) for t in settings.tiers],
            settings.start_tier,
            start_tier_features(settings),
            StartTierMetrics(registry, names),
        )
    policy = RoutingPolicy(
        names,
        rules=rules,
        classifier=classifier,
        threshold=threshold,
        default_tier=settings.policy.default_tier,
        allow_tier_hint=settings.policy.allow_tier_hint,
        classifier_timeout=settings.policy.classifier_timeout_ms / 1000,
        start_tier=start_tier,
        largest_below=settings.policy.classifier_largest_below,
    )
    metrics = RouterMetrics(registry, names, policy.reasons)
    tiers = TierPool(settings.tiers, settings.resilience, metrics)
    prices = {t.name: Prices(t.input_usd_per_mtok, t.output_usd_per_mtok) for t in settings.tiers}
    ledger = CostLedger(metrics, prices, names[-1], settings.logging.log_prompts)
    shadow = ShadowSampler(settings.shadow, metrics, names[-1], prices[names[-1]])
    gate: Gate = OpenGate()
    state = open_state(settings.state, registry)
    if settings.auth.enabled:
        keys = load_keys(settings.auth)
        gate = TenantGate(
            keys,
            state=state,
            open_methods=frozenset(settings.auth.open_methods),
            retry_after_seconds=settings.limits.retry_after_seconds,
            default_max_fallback_threshold=settings.policy.fallback_threshold,
        )
        _log.info("api keys loaded", keys=len(keys), tenants=sorted({k.tenant for k in keys}))
    servicer = RouterServicer(settings, policy, tiers, ledger, metrics, shadow, gate)
    binding = ServiceBinding(
        SERVICE_NAME,
        lambda server: router_service_pb2_grpc.add_RouterServiceServicer_to_server(  # type: ignore[no-untyped-call]
            servicer, server
        ),
    )
    bootstrap = ServerBootstrap(settings.server, [binding], registry)
    _log.info(
        "router built",
        tiers=list(names),
        classifier=(
            settings.classifier.encoder if onnx is not None else ("custom" if classifier else "off")
        ),
        threshold=threshold,
        fallback_mode=settings.policy.fallback_mode.value,
        fallback_threshold=settings.policy.fallback_threshold,
        auth=settings.auth.enabled,
        start_tier=start_tier is not None,
    )
    return RouterApp(
        settings,
        bootstrap,
        tiers,
        onnx,
        metrics,
        registry,
        shadow,
        gate,
        servicer,
        QualityOff(),
        start_tier,
        state=state,
    )


def start_tier_features(settings: RouterSettings) -> Featurizer:
    """The learned start tier's features: cheap ones, plus the static encoder's embedding
    when ``start_tier.embedding`` is on and its artefact is there."""
    cheap = CheapFeatures(settings.start_tier.hash_buckets)
    if not settings.start_tier.embedding:
        return cheap
    try:
        embedding = load_static_embedding(settings.classifier)
    except FileNotFoundError as exc:
        _log.warning("start tier without the static embedding", error=str(exc))
        return cheap
    return WithEmbedding(cheap, embedding.embed, embedding.dimensions, "static")


async def open_quality(
    settings: RouterSettings,
    tiers: TierPool,
    metrics: RouterMetrics,
    registry: CollectorRegistry,
    start_tier: StartTierLearner | None = None,
    samples: SampleStore | None = None,
) -> QualityOn:
    """The quality loop with its saved state, its judges and its judged-sample sampler (whose
    verdicts also teach ``start_tier``, when one is on). ``samples``: the judged-sample store
    every replica shares (Redis), else the loop's own in-process one."""
    names = settings.tier_names
    largest = names[-1]
    prices = {t.name: Prices(t.input_usd_per_mtok, t.output_usd_per_mtok) for t in settings.tiers}
    quality = settings.quality.resolved()
    loop = await QualityLoop.open(
        quality,
        names,
        largest,
        fallback_threshold=settings.policy.fallback_threshold,
        metrics=QualityMetrics(
            registry, names, (*JUDGE_NAMES, FEEDBACK), shadow_cost=metrics.shadow_cost
        ),
        store=samples,
    )
    judges = build_judges(settings.judges, ask=tier_ask(tiers[largest], prices[largest]))
    on_verdict = None
    if start_tier is not None:
        learner = start_tier

        def on_verdict(request: ServedRequest, acceptable: bool) -> None:
            learner.observe_judged(
                request.prompt, request.routing_score, request.first_tier, acceptable
            )

    sampler = JudgedSampler(
        loop,
        judges,
        largest,
        prices[largest],
        settings.shadow.max_in_flight,
        on_verdict=on_verdict,
    )
    _log.info(
        "quality loop open",
        target=quality.target,
        thresholds={t: s.threshold for t, s in loop.controller.states().items()},
        state_dir=str(quality.state_dir) if quality.state_dir is not None else None,
        judge=settings.judges.default,
    )
    return QualityOn(
        loop,
        sampler,
        RecentRequests(quality.recent_requests),
        names,
        quality.report_interval_seconds,
    )
