"""One gRPC server bootstrap for every tierroute service.

It builds a ``grpc.aio`` server with the error-mapping interceptor, standard health checking
(``grpc.health.v1``), server reflection and a Prometheus ``/metrics`` endpoint, serves TLS
(or mutual TLS) when ``server.tls`` is set, and shuts down gracefully: health NOT_SERVING,
``server.stop(grace)`` so in-flight streams finish, then the owner's shutdown hook (for
example the engine's).

The certificate files of ``server.tls`` are followed: rotated in place, they are served from
the next connection on (:mod:`tierroute.cert_reload`), and the served certificate's expiry is
the gauge ``tierroute_tls_certificate_expiry_timestamp_seconds{service}`` (seconds since the
epoch; ``service`` is the first served proto service, e.g. ``tierroute.v1.ModelService``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tierroute.cert_reload import ReloadingServerCredentials
from tierroute.config import ServerSettings
from tierroute.status import ErrorMappingInterceptor

_log = structlog.get_logger("tierroute.server")


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer to serve: its full proto name and the generated ``add_*_to_server`` call."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class ServerBootstrap:
    """Owns the gRPC server, health, reflection and the metrics endpoint of one process."""

    def __init__(
        self,
        settings: ServerSettings,
        services: Sequence[ServiceBinding],
        registry: CollectorRegistry,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self._settings = settings
        self._services = tuple(services)
        self._registry = registry
        # Read the certificate files now: a file that vanished since the settings loaded
        # fails the build, before anything is started.
        self.certificates: ReloadingServerCredentials | None = None
        if credentials is None and settings.tls is not None:
            self.certificates = ReloadingServerCredentials(settings.tls)
            credentials = self.certificates.credentials()
            expiry = Gauge(
                "tierroute_tls_certificate_expiry_timestamp_seconds",
                "Expiry (notAfter) of the TLS certificate this service serves, seconds since "
                "the epoch; follows rotated certificate files.",
                ["service"],
                registry=registry,
            )
            service = self._services[0].name if self._services else "unknown"
            expiry.labels(service=service).set_function(self.certificates.not_after)
        self._credentials = credentials
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self.server = grpc.aio.server(
            interceptors=[*interceptors, ErrorMappingInterceptor()], options=options
        )
        self.health = health.aio.HealthServicer()
        self.port = 0
        self.health_port: int | None = None
        self._health_server: grpc.aio.Server | None = None
        self.metrics_port: int | None = None
        self._metrics_server: Any = None

    async def start(self) -> None:
        """Bind and start serving; health stays NOT_SERVING until :meth:`set_serving`."""
        for service in self._services:
            service.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [s.name for s in self._services]
        if self._settings.reflection:
            reflection.enable_server_reflection(
                [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
            )
        address = f"{self._settings.host}:{self._settings.port}"
        if self._credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, self._credentials)
        if self.port == 0:
            raise OSError(f"could not bind the gRPC port at {address}")
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        if self._settings.health_port is not None:
            await self._start_health_port(self._settings.health_port)
        if self._settings.metrics_port is not None:
            http_server, _ = start_http_server(
                self._settings.metrics_port, addr=self._settings.host, registry=self._registry
            )
            self._metrics_server = http_server
            self.metrics_port = int(http_server.server_port)
        _log.info(
            "serving",
            port=self.port,
            metrics_port=self.metrics_port,
            services=names,
            tls=self._tls_mode(),
            health_port=self.health_port,
        )

    async def _start_health_port(self, port: int) -> None:
        # Its own server with the same health servicer: the probes see exactly what the main
        # port reports, and nothing else is reachable without TLS.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self._settings.host}:{port}"
        bound = server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"could not bind the health port at {address}")
        await server.start()
        self._health_server = server
        self.health_port = bound

    def _tls_mode(self) -> str:
        tls = self._settings.tls
        if self._credentials is None:
            return "off"
        if tls is not None and tls.require_client_auth:
            return "mutual"
        return "on"

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING (ready) or NOT_SERVING for the whole server and each service."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._set_all(status)

    async def _set_all(self, status: int) -> None:
        await self.health.set("", status)
        for service in self._services:
            await self.health.set(service.name, status)

    async def stop(self) -> None:
        """NOT_SERVING, then let in-flight calls finish for up to the grace period."""
        await self.health.enter_graceful_shutdown()
        _log.info("draining", grace_seconds=self._settings.grace_seconds)
        await self.server.stop(self._settings.grace_seconds)
        if self._health_server is not None:
            await self._health_server.stop(None)
            self._health_server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        _log.info("stopped")


async def run_until_signal(
    bootstrap: ServerBootstrap,
    ready: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start, run ``ready`` (e.g. warm-up) then report SERVING; on SIGTERM/SIGINT stop cleanly."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await bootstrap.start()
        if ready is not None:
            await ready()
        await bootstrap.set_serving(True)
        _log.info("ready", port=bootstrap.port)
        await stopping.wait()
        _log.info("signal received, shutting down")
        await bootstrap.stop()
    finally:
        if shutdown is not None:
            await shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
