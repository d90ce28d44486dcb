"""``python -m openai_gateway --router HOST:PORT [--host H] [--port P] [--config FILE]``.

TLS to the router: ``--router-ca-file CA`` (plus ``--router-cert-file``/``--router-key-file``
for mutual TLS, ``--router-server-name`` when the certificate names another host than the
target), or ``router.tls`` in the file; the flags override the file's fields one by one.

Binds the port itself (so ``--port 0`` works and the chosen port is logged), then serves the app
with uvicorn, which drains in-flight requests on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from openai_gateway.app import create_app
from openai_gateway.config import OpenAISettings
from tierroute.config import ClientTls
from tierroute.logging import configure_logging


class _Server(uvicorn.Server):
    """uvicorn's server with signals on the event loop: a drained stop exits with status 0.

    (uvicorn re-raises the signal after shutdown, which would end the process with -15.)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; each overrides the config file and the environment."""
    parser = argparse.ArgumentParser(prog="python -m openai_gateway", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--router", help="gRPC target of the router (host:port)")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    tls = parser.add_argument_group("TLS to the router (a router started with server.tls)")
    tls.add_argument(
        "--router-tls", action="store_true", help="use TLS (implied by the options below)"
    )
    tls.add_argument(
        "--router-ca-file", type=Path, help="PEM CA bundle the router's certificate chains to"
    )
    tls.add_argument("--router-cert-file", type=Path, help="PEM client certificate (mutual TLS)")
    tls.add_argument("--router-key-file", type=Path, help="PEM key of --router-cert-file")
    tls.add_argument("--router-server-name", help="name to check the router's certificate against")
    return parser.parse_args(argv)


def router_tls(args: argparse.Namespace, configured: ClientTls | None) -> ClientTls | None:
    """``router.tls`` with the TLS flags on top; any flag turns TLS on."""
    flags = {
        "ca_file": args.router_ca_file,
        "cert_file": args.router_cert_file,
        "key_file": args.router_key_file,
        "server_name": args.router_server_name,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    if not given and not args.router_tls:
        return configured
    base = configured.model_dump() if configured is not None else {}
    # Validated afresh: the files must exist and hold PEM, and a certificate needs its key.
    return ClientTls.model_validate({**base, **given, "enabled": True})


def load_settings(args: argparse.Namespace) -> OpenAISettings:
    """Settings from the file and environment, with the command line on top."""
    base = OpenAISettings.load(args.config)
    http: dict[str, Any] = {}
    if args.host is not None:
        http["host"] = args.host
    if args.port is not None:
        http["port"] = args.port
    overrides: dict[str, Any] = {}
    if http:
        overrides["http"] = base.http.model_copy(update=http)
    router: dict[str, Any] = {}
    if args.router is not None:
        router["target"] = args.router
    tls = router_tls(args, base.router.tls)
    if tls is not base.router.tls:
        router["tls"] = tls
    if router:
        overrides["router"] = base.router.model_copy(update=router)
    return base.model_copy(update=overrides) if overrides else base


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket for uvicorn (bound here so that port 0 can be logged)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created with it, and
    # without it Nagle plus delayed ACKs add ~40 ms to every small response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def serve(settings: OpenAISettings) -> None:
    """Serve until SIGTERM/SIGINT."""
    log = structlog.get_logger("openai_gateway")
    sock = bind(settings.http.host, settings.http.port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.http.grace_seconds),
        # The stdlib loop keeps behaviour identical to the tests; uvloop is optional.
        loop="asyncio",
    )
    log.info(
        "serving",
        host=settings.http.host,
        port=port,
        router=settings.router.target,
        router_tls=settings.router.tls is not None and settings.router.tls.enabled,
    )
    await _Server(config).serve(sockets=[sock])
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        settings = load_settings(parse_args(argv))
    except ValueError as exc:  # pydantic's ValidationError: a bad setting or TLS file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
