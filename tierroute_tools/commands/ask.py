"""``tierroute ask "..."``: send one query to a running router and stream the answer.

The routing events are printed between brackets on standard error (decision, escalation, cost
and savings), the answer text on standard output, so the answer can be piped on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tierroute.config import ClientTls

API_KEY_ENV = "TIERROUTE_API_KEY"
MAX_TOKENS_LIMIT = 2**32 - 1
"""Largest ``max_tokens`` the contract can carry (``uint32``); the services cap it lower."""
TLS_ERROR_EXIT_CODE = 3
"""Exit code for unreadable or mismatched TLS files (2 is argparse's, for bad arguments)."""


def token_count(text: str) -> int:
    """An ``argparse`` type: a whole number of tokens, 1 or more (argparse names the option
    in its error and exits with its usage code, 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TOKENS_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of tokens from 1 to {MAX_TOKENS_LIMIT} (the model services "
            f"cap it lower, at 1024 by default), got {text!r}"
        )
    return value


def register(subparsers: Any) -> None:
    """Add the ``ask`` command."""
    parser = subparsers.add_parser(
        "ask", help="send one query to a running router", description=__doc__
    )
    parser.add_argument("prompt", help="the question (use - to read it from standard input)")
    parser.add_argument(
        "--max-tokens", type=token_count, default=256, help="tokens to generate at most"
    )
    parser.add_argument(
        "--mode",
        choices=["buffered", "streaming", "early_window", "disabled"],
        help="fallback mode (default: the router's)",
    )
    parser.add_argument("--tier", help="pin a tier by name (needs the permission)")
    add_router_arguments(parser, timeout=120.0)
    parser.set_defaults(func=run)


def add_router_arguments(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    """Address, deadline, API key and TLS flags of every command that calls a router."""
    parser.add_argument("--router", default="127.0.0.1:50051", help="router address (host:port)")
    parser.add_argument("--timeout", type=float, default=timeout, help="deadline in seconds")
    parser.add_argument(
        "--api-key", default=None, help=f"API key (default: ${API_KEY_ENV} when set)"
    )
    tls = parser.add_argument_group("TLS (a router started with server.tls)")
    tls.add_argument("--tls", action="store_true", help="use TLS (implied by the options below)")
    tls.add_argument("--ca-file", type=Path, help="PEM CA bundle the router certificate chains to")
    tls.add_argument("--cert-file", type=Path, help="PEM client certificate (mutual TLS)")
    tls.add_argument("--key-file", type=Path, help="PEM key of --cert-file")
    tls.add_argument("--server-name", help="name to check the router's certificate against")


def client_tls(args: argparse.Namespace) -> ClientTls | None:
    """The TLS settings the TLS flags ask for; ``None`` for a plaintext channel."""
    from tierroute.config import ClientTls

    wanted = (args.ca_file, args.cert_file, args.key_file, args.server_name)
    if not args.tls and all(value is None for value in wanted):
        return None
    return ClientTls(
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        server_name=args.server_name,
    )


def run(args: argparse.Namespace) -> int:
    """Ask and print; exit code 1 with the gRPC status on failure, 3 for bad TLS files."""
    from tierroute.client import RouterError

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    try:
        asyncio.run(_ask(args, prompt, api_key, sys.stdout, sys.stderr))
    except ValueError as exc:  # unreadable or mismatched TLS files
        print(f"error: TLS: {exc}", file=sys.stderr)
        return TLS_ERROR_EXIT_CODE
    except RouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _ask(
    args: argparse.Namespace, prompt: str, api_key: str | None, out: TextIO, err: TextIO
) -> None:
    from tierroute.client import Escalation, FinishedEvent, RoutedEvent, Router, TextEvent

    tls = client_tls(args)
    async with Router(args.router, api_key=api_key, timeout=args.timeout, tls=tls) as router:
        # Sent as a chat turn: each tier renders it with its own chat template.
        stream = router.generate(
            [("user", prompt)], max_tokens=args.max_tokens, fallback_mode=args.mode, tier=args.tier
        )
        async for event in stream:
            if isinstance(event, RoutedEvent):
                score = (
                    "" if event.classifier_score is None else f" score={event.classifier_score:.3f}"
                )
                print(f"[routed] tier={event.tier} reason={event.reason}{score}", file=err)
            elif isinstance(event, TextEvent):
                out.write(event.text)
                out.flush()
            elif isinstance(event, Escalation):
                print(
                    f"\n[escalated] {event.from_tier} -> {event.to_tier} ({event.cause}, "
                    f"confidence {event.confidence:.3f}): discard the text above",
                    file=err,
                )
            elif isinstance(event, FinishedEvent):
                out.write("\n")
                share = (
                    event.savings_usd / event.baseline_cost_usd if event.baseline_cost_usd else 0.0
                )
                degraded = f" degraded ({event.degraded_reason})" if event.degraded else ""
                print(
                    f"[finished] tier={event.tier} escalated={event.escalated}{degraded} "
                    f"confidence={event.confidence:.3f} tokens={event.prompt_tokens}+"
                    f"{event.completion_tokens} cost=${event.cost_usd:.8f} "
                    f"baseline=${event.baseline_cost_usd:.8f} saved={share:.0%}",
                    file=err,
                )
