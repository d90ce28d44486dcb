"""The real model service over the scripted engine, as its own process (tests, soaks, demos).

``python -m model_svc.scripted_server --tier T --port P --metrics-port M [knobs]`` runs
``model_svc``'s own ``ModelServer`` (servicer, validation, confidence, metrics, JSON logs, health,
``/metrics``, peer auth and TLS from ``TIERROUTE_*``) with
:class:`~model_svc.engines.scripted.ScriptedEngine` in place of vLLM: processes start in about a
second and answer in milliseconds, so what a test measures is the services, not an engine. Every
field of the :class:`Script` has a flag (see ``--help``); ``--rules FILE`` reads prompt-to-answer
rules from JSON::

    [{"contains": "def add(", "tokens": ["    return a + b\\n"], "logprob": -0.02},
     {"contains": "", "answer": "I do not know.", "logprob": -2.5}]

(``tokens`` lists the answer token by token; ``answer`` is split into words instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_svc.config import ModelServiceSettings
from model_svc.engines.scripted import DEFAULT_WORDS, Rule, Script, ScriptedEngine, split_tokens
from model_svc.server import ModelServer
from tierroute.logging import configure_logging


def load_rules(path: Path) -> tuple[Rule, ...]:
    """The rules of a JSON file (the format is in the module docstring)."""
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    rules = []
    for row in rows:
        tokens = row["tokens"] if "tokens" in row else split_tokens(row["answer"])
        rules.append(Rule(str(row["contains"]), tuple(tokens), float(row["logprob"])))
    return tuple(rules)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The service flags and the script's knobs."""
    parser = argparse.ArgumentParser(
        prog="python -m model_svc.scripted_server", description=__doc__
    )
    parser.add_argument("--tier", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--answer", help="default answer text, one token per word")
    parser.add_argument("--tokens", type=int, help="tokens of the default answer (words repeat)")
    parser.add_argument("--rules", type=Path, help="JSON prompt-to-answer rules")
    parser.add_argument("--token-delay", type=float, default=0.002, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="prefill seconds")
    parser.add_argument("--unsure", action="append", default=[], help="low confidence on WORD")
    parser.add_argument("--sure-logprob", type=float, default=-0.02)
    parser.add_argument("--unsure-logprob", type=float, default=-2.5)
    parser.add_argument("--slow", action="append", default=[], help="slow tokens on WORD")
    parser.add_argument("--slow-token-delay", type=float, default=0.05)
    parser.add_argument("--die-after", type=int, help="SIGKILL itself after N tokens")
    parser.add_argument("--events", type=Path, help="append start/finish/abort lines here")
    parser.add_argument("--model-name", default="scripted-model")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-streams", type=int, default=32, help="concurrent streams")
    parser.add_argument("--grace", type=float, default=1.0, help="drain seconds on SIGTERM")
    parser.add_argument("--health-interval", type=float, default=1.0, help="engine checks")
    return parser.parse_args(argv)


def script_from(args: argparse.Namespace) -> Script:
    """The :class:`Script` the flags describe."""
    return Script(
        words=split_tokens(args.answer) if args.answer else DEFAULT_WORDS,
        tokens=args.tokens,
        rules=load_rules(args.rules) if args.rules else (),
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        unsure=tuple(args.unsure),
        sure_logprob=args.sure_logprob,
        unsure_logprob=args.unsure_logprob,
        slow=tuple(args.slow),
        slow_token_delay=args.slow_token_delay,
        die_after=args.die_after,
        events=args.events,
        model_name=args.model_name,
        max_model_len=args.max_model_len,
    )


async def serve(settings: ModelServiceSettings, script: Script) -> None:
    """Build the server inside the running loop (grpc.aio binds to it) and serve."""
    await ModelServer(settings, ScriptedEngine(script)).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one scripted tier until SIGTERM (or a scripted death)."""
    args = parse_args(argv)
    script = script_from(args)
    settings = ModelServiceSettings.load(
        None,
        tier=args.tier,
        server={
            "host": args.host,
            "port": args.port,
            "metrics_port": args.metrics_port,
            "grace_seconds": args.grace,
        },
        limits={"max_concurrent_streams": args.max_streams},
        # A router's configuration holds the prices that count; these are what the tier shows.
        prices={"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
        engine={"health_interval_seconds": args.health_interval},
    )
    configure_logging(settings.logging)
    asyncio.run(serve(settings, script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
