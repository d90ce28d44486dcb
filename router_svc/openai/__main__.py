"""``python -m router_svc.openai --router HOST:PORT [--host H] [--port P] [--config FILE]``.

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

from router_svc.openai.app import create_app
from router_svc.openai.config import OpenAISettings
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
    parser = argparse.ArgumentParser(prog="python -m router_svc.openai", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--router", help="gRPC target of the router (host:port)")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    return parser.parse_args(argv)


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
    if args.router is not None:
        overrides["router"] = base.router.model_copy(update={"target": args.router})
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
    log = structlog.get_logger("router_svc.openai")
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
    log.info("serving", host=settings.http.host, port=port, router=settings.router.target)
    await _Server(config).serve(sockets=[sock])
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    settings = load_settings(parse_args(argv))
    configure_logging(settings.logging)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
