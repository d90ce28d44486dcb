"""``python -m router_svc [--config FILE] [--port N] [--metrics-port N]``: run the router.

With ``workers.count`` above 1 (or ``auto``) this process supervises that many router
processes sharing the port (:mod:`router_svc.workers`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from router_svc.config import RouterSettings
from router_svc.metrics import RouterMetrics
from router_svc.server import build_router
from router_svc.workers import free_port, run_worker, share_port, supervise, worker_count
from tierroute.config import ServerSettings
from tierroute.logging import configure_logging
from tierroute.server import run_until_signal


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; anything else comes from the config file and environment."""
    parser = argparse.ArgumentParser(prog="python -m router_svc", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML settings file (or $TIERROUTE_CONFIG)")
    parser.add_argument("--port", type=int, help="gRPC port (0: pick a free one)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port")
    parser.add_argument("--host", help="interface to bind")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> RouterSettings:
    """Settings from the file and environment, with the command line on top."""
    settings = RouterSettings.load(args.config)
    overrides = {
        key: value
        for key, value in (
            ("port", args.port),
            ("metrics_port", args.metrics_port),
            ("host", args.host),
        )
        if value is not None
    }
    if overrides:
        server = ServerSettings.model_validate({**settings.server.model_dump(), **overrides})
        settings = settings.model_copy(update={"server": server})
    return settings


async def serve(settings: RouterSettings, reuse_port: bool = False) -> None:
    """Build the router and serve until SIGTERM/SIGINT (``reuse_port``: as one of workers)."""
    app = build_router(settings)
    refresh: asyncio.Task[None] | None = None
    if reuse_port:
        share_port(app.bootstrap, settings.server)
        refresh = asyncio.create_task(refresh_metrics(app.metrics))
    try:
        await run_until_signal(app.bootstrap, ready=app.ready, shutdown=app.shutdown)
    finally:
        if refresh is not None:
            refresh.cancel()


async def refresh_metrics(metrics: RouterMetrics, period: float = 1.0) -> None:
    """Store the tier health readings every ``period`` seconds, for the supervisor's sum."""
    while True:
        metrics.refresh_watched()
        await asyncio.sleep(period)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for configuration problems)."""
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except (ValidationError, FileNotFoundError) as exc:
        print(f"router_svc: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging)
    count = worker_count(settings.workers)
    if count > 1:
        server = settings.server
        port = server.port or free_port(server.host)
        argv = list(sys.argv[1:] if argv is None else argv)
        target = functools.partial(run_worker, argv, port)
        print(f"router_svc: {count} workers on port {port}", file=sys.stderr)
        return supervise(target, count, settings.workers, server.host, server.metrics_port)
    try:
        asyncio.run(serve(settings))
    except FileNotFoundError as exc:  # the classifier artefact is missing
        print(f"router_svc: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
