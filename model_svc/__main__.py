"""``python -m model_svc --tier NAME``: serve one model tier over gRPC.

Flags override the configuration file (``--config`` or ``$TIERROUTE_CONFIG``) and the
``TIERROUTE_*`` environment. The process logs a JSON ``ready`` line once health is SERVING.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model_svc.config import ModelServiceSettings
from tierroute.errors import TierrouteError
from tierroute.logging import configure_logging


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the model service."""
    parser = argparse.ArgumentParser(prog="python -m model_svc", description=__doc__)
    parser.add_argument("--tier", help="tier name (small, large, xl or a configured one)")
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--port", type=int, help="gRPC port (0: any free port)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (0: any free port)")
    parser.add_argument("--model", type=Path, help="Hugging Face model folder")
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides for the flags that were given."""
    overrides: dict[str, Any] = {}
    if args.tier is not None:
        overrides["tier"] = args.tier
    server: dict[str, Any] = {}
    if args.port is not None:
        server["port"] = args.port
    if args.metrics_port is not None:
        server["metrics_port"] = args.metrics_port
    if server:
        overrides["server"] = server
    if args.model is not None:
        overrides["engine"] = {"model": args.model}
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Load settings and serve; exit code 2 for configuration problems."""
    args = parse_args(argv)
    try:
        settings = ModelServiceSettings.load(args.config, **overrides_from(args))
        settings.model_path()
        settings.prices_usd_per_mtok()
    except (ValidationError, FileNotFoundError, TierrouteError) as exc:
        print(f"model_svc: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging)
    from model_svc.server import serve

    asyncio.run(serve(settings))
    # Everything is shut down. What is left is a heap of engine and tokenizer objects whose
    # final garbage collection took 4-10 s here; freezing them makes the exit immediate.
    gc.freeze()
    return 0


# vLLM starts its engine processes with "spawn", which re-imports this module in each child:
# the guard keeps the children from starting servers of their own.
if __name__ == "__main__":
    sys.exit(main())
