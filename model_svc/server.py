"""Wiring of one model service process: engine, metrics, servicer, bootstrap, lifecycle.

Access (``model_svc/auth.py``): ``auth.mode`` ``shared_secret`` installs an interceptor that
refuses calls without the router's secret (health and reflection stay open unless configured
otherwise); ``mtls`` relies on ``server.tls`` requiring a client certificate, and
``auth.allowed_peer_sans`` pins that certificate's names. ``limits.max_prompt_tokens`` is
enforced by the generation service, right after tokenizing.

Lifecycle: the gRPC port opens at once with health NOT_SERVING; the engine loads, one warm-up
generation must succeed, then health turns SERVING (and the bootstrap logs ``ready``). A
watchdog flips health to NOT_SERVING if the engine dies. On SIGTERM: NOT_SERVING, in-flight
streams drain for up to ``server.grace_seconds``, then the engine shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector

from model_svc.auth import peer_auth_interceptors
from model_svc.config import ModelServiceSettings
from model_svc.engines.base import ChatTurn, Engine, GenerationRequest, PromptInput
from model_svc.generation import GenerationService
from model_svc.metrics import ModelMetrics
from model_svc.servicer import ModelServicer
from tierroute.server import ServerBootstrap, ServiceBinding, run_until_signal
from tierroute.v1 import model_service_pb2, model_service_pb2_grpc

SERVICE_NAME = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
_WARMUP_PROMPT = PromptInput(chat=(ChatTurn("user", "Say hello."),))
_log = structlog.get_logger("model_svc")


def build_engine(settings: ModelServiceSettings) -> Engine:
    """The vLLM engine of the settings; sets vLLM's environment before importing it."""
    from model_svc.engines.vllm_env import apply_engine_environment

    apply_engine_environment(settings.engine)
    from model_svc.engines.vllm_engine import VllmEngine

    return VllmEngine(settings.engine, settings.model_path(), settings.served_name())


class ModelServer:
    """Builds and runs everything one tier's process serves."""

    def __init__(
        self,
        settings: ModelServiceSettings,
        engine: Engine,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        if registry is None:
            registry = CollectorRegistry()
            # process_resident_memory_bytes and open fds of this service's process.
            ProcessCollector(registry=registry)
        self.registry = registry
        self.metrics = ModelMetrics(self.registry, settings.tier)
        self.metrics.watch_unfinished_requests(engine.num_unfinished_requests)
        self.service = GenerationService(
            engine,
            settings.limits,
            settings.confidence.params(),
            self.metrics,
            on_engine_dead=self.engine_died,
        )
        servicer = ModelServicer(settings, self.service, engine, self.metrics)
        binding = ServiceBinding(
            name=SERVICE_NAME,
            # The generated grpc module has no type stubs.
            register=lambda server: model_service_pb2_grpc.add_ModelServiceServicer_to_server(  # type: ignore[no-untyped-call]
                servicer, server
            ),
        )
        self.bootstrap = ServerBootstrap(
            settings.server, [binding], self.registry, interceptors=peer_auth_interceptors(settings)
        )
        _log.info(
            "access",
            auth=settings.auth.mode,
            allowed_peer_sans=settings.auth.allowed_peer_sans,
            tls=settings.server.tls is not None,
            max_prompt_tokens=settings.limits.max_prompt_tokens,
        )
        self._dead = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def warm_up(self) -> None:
        """Load the engine and run one short generation; raises when either fails."""
        _log.info("loading engine", tier=self.settings.tier, model=self.engine.info.model_name)
        await self.engine.start()
        prompt = await self.engine.render_prompt(_WARMUP_PROMPT)
        request = GenerationRequest(
            request_id="warm-up",
            prompt_token_ids=prompt,
            max_tokens=self.settings.engine.warmup_max_tokens,
        )
        tokens = 0
        async with contextlib.aclosing(self.engine.generate(request)) as stream:
            async for delta in stream:
                tokens += len(delta.token_ids)
        if tokens == 0:
            raise RuntimeError("the warm-up generation produced no tokens")
        self.metrics.engine_up.set(1)
        self._spawn(self._watch_engine())
        _log.info("engine warm", tier=self.settings.tier, info=self.engine.info.engine)

    def engine_died(self) -> None:
        """Mark the engine dead: engine_up 0 and health NOT_SERVING (idempotent)."""
        if self._dead:
            return
        self._dead = True
        self.metrics.engine_up.set(0)
        _log.error("inference engine died", tier=self.settings.tier)
        self._spawn(self.bootstrap.set_serving(False))

    async def _watch_engine(self) -> None:
        while not self._dead:
            await asyncio.sleep(self.settings.engine.health_interval_seconds)
            if not self.engine.is_alive():
                self.engine_died()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Stop the watchdog and the engine."""
        self._dead = True
        for task in list(self._tasks):
            task.cancel()
        self.metrics.engine_up.set(0)
        await self.engine.shutdown()
        _log.info("engine stopped", tier=self.settings.tier)

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT."""
        await run_until_signal(self.bootstrap, ready=self.warm_up, shutdown=self.shutdown)


async def serve(settings: ModelServiceSettings) -> None:
    """Build the vLLM engine and serve it until a signal arrives."""
    await ModelServer(settings, build_engine(settings)).run()
