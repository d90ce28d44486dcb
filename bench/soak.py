"""Soak: a steady request mix through the real router for minutes; errors, latency and memory.

Starts, on loopback, two scripted model tiers (``python -m model_svc.scripted_server``: the real
``ModelServer`` over a scripted engine, one process each, 64-word answers a word every 2 ms; the
small tier is unsure of "hard" prompts, so they escalate; "slow" prompts get 50 ms tokens) and the
real router (``python -m router_svc``: rules, no classifier, API keys on). Then it sends the mix of
``bench/soak_mix.py`` (short and long prompts, buffered, streaming and early-window modes,
escalations, a pinned tier, invalid requests, wrong keys, forbidden options, calls cancelled
mid-stream, tight deadlines) at a fixed rate with bounded concurrency, for ``--minutes`` or
``--max-requests``, whichever ends first.

Reported: requests, outcomes by status code (and any outcome a kind does not expect), p50/p99
latency, the RSS and open file descriptors of every process at boot, after the warm-up
("start"), half-way and at the end, the growth and its slope, and what the services' own
``/metrics`` say once the traffic stopped (nothing left in flight). A table goes to stdout, the
figures to ``--json`` (default ``.cache/bench/soak.json``)::

    python -m bench.soak [--minutes 10] [--rate 40] [--concurrency 32] [--tracemalloc]

``--malloc`` runs the router under ``bench/soak_tracemalloc.py``, which writes glibc's heap
figures to ``malloc.tsv`` in the run directory every ``--sample-seconds``; ``--tracemalloc``
also writes the top Python allocation growth there: for finding a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.soak_mix import KINDS, Tally, drive
from tierroute.launch import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
MODEL_ARGS = [
    *("--answer", "The answer is forty-two, as always.", "--tokens", "64"),
    *("--first-token-delay", "0.002", "--token-delay", "0.002"),
    *("--slow", "slow", "--slow-token-delay", "0.05"),
    # Long prompts must fit; the streams cap sits above the mix's concurrency.
    *("--model-name", "soak-model", "--max-model-len", "32768", "--max-streams", "64"),
]
DEFAULT_JSON = ROOT / ".cache" / "bench" / "soak.json"
MIB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    """Open file descriptors of a process (Linux ``/proc``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def router_config(path: Path, tiers: dict[str, str], keys: dict[str, str]) -> None:
    """The router's settings: two tiers, rules only, API keys for two tenants."""
    from router_svc.auth import hash_key  # only the digest function; no server is built here

    roomy = {"max_concurrent_streams": 1000, "rate_per_second": 10_000, "burst": 10_000}
    config = {
        "classifier": {"enabled": False},
        "tiers": [
            {"name": "small", "endpoints": [tiers["small"]], "input_usd_per_mtok": 0.05}
            | {"output_usd_per_mtok": 0.10},
            {"name": "large", "endpoints": [tiers["large"]], "input_usd_per_mtok": 0.50}
            | {"output_usd_per_mtok": 1.50},
        ],
        "auth": {
            "enabled": True,
            "keys": [
                {"tenant": "soak", "sha256": hash_key(keys["main"]), **roomy}
                | {"permissions": {"pin_tier": True, "streaming": True, "early_window": True}},
                {"tenant": "limited", "sha256": hash_key(keys["limited"]), **roomy},
            ],
        },
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


def scrape(port: int | None, names: Sequence[str]) -> dict[str, float]:
    """Sum of every sample of each metric in ``names`` on a ``/metrics`` endpoint."""
    if port is None:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        metric = line.split("{", 1)[0].split(" ", 1)[0]
        if metric in totals:
            totals[metric] += float(line.rsplit(" ", 1)[1])
    return totals


def requests_by_code(port: int | None) -> dict[str, float]:
    """The router's ``tierroute_router_requests_total`` summed per ``code`` label."""
    if port is None:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    codes: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tierroute_router_requests_total{"):
            code = line.split('code="', 1)[1].split('"', 1)[0]
            codes[code] = codes.get(code, 0.0) + float(line.rsplit(" ", 1)[1])
    return codes


class Sampler:
    """Samples RSS and open descriptors of named processes over time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self.started = time.monotonic()

    def sample(self) -> None:
        """One sample of every process: (seconds since start, {name: (rss, fds)})."""
        at = time.monotonic() - self.started
        self.samples.append((at, {n: (rss_bytes(p), open_fds(p)) for n, p in self.pids.items()}))

    async def every(self, seconds: float) -> None:
        """Sample until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            self.sample()


def slope_mib_per_min(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time (MiB per minute)."""
    if len(points) < 3:
        return 0.0
    slope = statistics.linear_regression([t for t, _ in points], [r for _, r in points]).slope
    return slope * 60 / MIB


def memory_report(sampler: Sampler, warmup: float) -> dict[str, Any]:
    """Per process: RSS and descriptors at boot, start (after warm-up), middle and end."""
    samples = sampler.samples
    boot = samples[0]
    after = [s for s in samples[1:] if s[0] >= warmup] or samples[-1:]
    start, end = after[0], after[-1]
    middle = min(after, key=lambda s: abs(s[0] - (start[0] + end[0]) / 2))
    report: dict[str, Any] = {}
    for name, pid in sampler.pids.items():
        points = {"boot": boot, "start": start, "middle": middle, "end": end}
        rss = {k: s[1][name][0] / MIB for k, s in points.items()}
        report[name] = {
            "pid": pid,
            "rss_mib": {k: round(v, 2) for k, v in rss.items()},
            "fds": {k: s[1][name][1] for k, s in points.items()},
            "growth_mib": round(rss["end"] - rss["start"], 2),
            "growth_second_half_mib": round(rss["end"] - rss["middle"], 2),
            "slope_mib_per_min": round(slope_mib_per_min([(t, s[name][0]) for t, s in after]), 3),
            "slope_second_half_mib_per_min": round(
                slope_mib_per_min([(t, s[name][0]) for t, s in after if t >= middle[0]]), 3
            ),
            "series_mib": [[round(t, 1), round(s[name][0] / MIB, 2)] for t, s in samples],
        }
    return report


@contextlib.contextmanager
def services(
    run_dir: Path, keys: dict[str, str], watch: tuple[float, bool] | None
) -> Iterator[dict[str, Any]]:
    """The two scripted tiers and the router, serving; stopped at the end of the block."""
    started: list[ServiceProcess] = []
    try:
        tiers = {}
        for tier in ("small", "large"):
            args = ["--tier", tier, *MODEL_ARGS] + (["--unsure", "hard"] if tier == "small" else [])
            proc = ServiceProcess(
                "model_svc.scripted_server", args, cwd=ROOT, log_path=run_dir / f"model-{tier}.log"
            )
            started.append(proc)
            tiers[tier] = proc
        for proc in tiers.values():
            proc.wait_until_serving(60)
        config = run_dir / "router.yaml"
        router_config(config, {t: p.address for t, p in tiers.items()}, keys)
        module, args = "router_svc", ["--config", str(config)]
        if watch:
            module = "bench.soak_tracemalloc"
            args = ["--snapshot-dir", str(run_dir), "--interval", str(watch[0]), *args]
            args += ["--trace"] if watch[1] else []
        router = ServiceProcess(module, args, cwd=ROOT, log_path=run_dir / "router.log")
        started.append(router)
        router.wait_until_serving(60)
        yield {"router": router, **{f"model-{t}": p for t, p in tiers.items()}}
    finally:
        for proc in reversed(started):
            proc.stop()


async def soak(
    args: argparse.Namespace, procs: dict[str, ServiceProcess], keys: dict[str, str]
) -> tuple[Tally, Sampler, float]:
    """Drive the mix while sampling memory; the tally and the sampler."""
    sampler = Sampler({name: proc.pid for name, proc in procs.items()})
    sampler.sample()  # boot: serving, no traffic yet
    sampling = asyncio.create_task(sampler.every(args.sample_seconds))
    tally = Tally()
    started = time.monotonic()
    try:
        await drive(
            procs["router"].address,
            keys,
            rate=args.rate,
            concurrency=args.concurrency,
            seconds=args.minutes * 60,
            max_requests=args.max_requests,
            seed=args.seed,
            without=frozenset(args.without),
            tally=tally,
        )
    finally:
        sampling.cancel()
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # let the servers finish their cleanup of cancelled streams
    sampler.sample()
    return tally, sampler, elapsed


def summary(
    args: argparse.Namespace, tally: Tally, sampler: Sampler, elapsed: float
) -> dict[str, Any]:
    """The figures of a run (without the services' own metrics)."""
    codes: dict[str, int] = {}
    for counter in tally.codes.values():
        for code, count in counter.items():
            codes[code] = codes.get(code, 0) + count
    ok = tally.ok_latency_ms
    by_kind = {}
    for kind in KINDS:
        values = tally.latency_ms.get(kind.name, [])
        by_kind[kind.name] = {
            "expect": kind.expect,
            "codes": dict(tally.codes.get(kind.name, {})),
            "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(max(values, default=0.0), 2),
        }
    return {
        "requests": sum(codes.values()),
        "seconds": round(elapsed, 1),
        "rate_per_s": round(sum(codes.values()) / elapsed, 2),
        "late": tally.late,
        "codes": dict(sorted(codes.items())),
        "errors": sum(n for code, n in codes.items() if code != "OK"),
        "unexpected": tally.unexpected_count,
        "unexpected_examples": tally.unexpected,
        "latency_ms": {
            "p50": round(percentile(ok, 50), 2),
            "p99": round(percentile(ok, 99), 2),
            "max": round(max(ok, default=0.0), 2),
        },
        "ttft_ms": {
            "p50": round(percentile(tally.ttft_ms, 50), 2),
            "p99": round(percentile(tally.ttft_ms, 99), 2),
        },
        "by_kind": by_kind,
        "processes": memory_report(sampler, args.warmup_seconds),
        "settings": {
            "minutes": args.minutes,
            "max_requests": args.max_requests,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "warmup_seconds": args.warmup_seconds,
            "sample_seconds": args.sample_seconds,
            "seed": args.seed,
            "without": sorted(args.without),
            "cpus": os.cpu_count(),
        },
    }


def after_traffic(procs: dict[str, ServiceProcess]) -> dict[str, Any]:
    """What the services report once the traffic stopped: nothing should be left in flight."""
    router = procs["router"].metrics_port
    report: dict[str, Any] = {
        "router_active_streams": scrape(router, ["tierroute_router_active_streams"])[
            "tierroute_router_active_streams"
        ],
        "router_requests_by_code": requests_by_code(router),
    }
    names = ["tierroute_model_active_streams", "tierroute_model_engine_unfinished_requests"]
    for name, proc in procs.items():
        if name.startswith("model-"):
            values = scrape(proc.metrics_port, names)
            report[name] = {"active_streams": values[names[0]], "unfinished": values[names[1]]}
    return report


def table(result: dict[str, Any]) -> str:
    """A Markdown summary of a run."""
    r = result
    codes = ", ".join(f"{code} {n}" for code, n in r["codes"].items())
    lines = [
        f"{r['requests']} requests in {r['seconds']:.0f} s ({r['rate_per_s']:.1f}/s, "
        f"{r['settings']['concurrency']} max in flight); {codes}; unexpected outcomes: "
        f"{r['unexpected']}",
        f"finished streams: latency p50 {r['latency_ms']['p50']:.1f} ms, p99 "
        f"{r['latency_ms']['p99']:.1f} ms; TTFT p50 {r['ttft_ms']['p50']:.1f} ms, p99 "
        f"{r['ttft_ms']['p99']:.1f} ms",
        "",
        "| kind | calls | outcomes | p50 / p99 / max (ms) |",
        "|---|---:|---|---|",
    ]
    for name, k in r["by_kind"].items():
        outcomes = ", ".join(f"{code} {n}" for code, n in sorted(k["codes"].items()))
        lines.append(
            f"| {name} | {sum(k['codes'].values())} | {outcomes} "
            f"| {k['p50_ms']:.1f} / {k['p99_ms']:.1f} / {k['max_ms']:.1f} |"
        )
    lines += [
        "",
        "| process | RSS boot / start / middle / end (MiB) | growth start→end (MiB) "
        "| second half (MiB) | slope (MiB/min) | open fds start / end |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, p in r["processes"].items():
        rss = " / ".join(f"{p['rss_mib'][k]:.1f}" for k in ("boot", "start", "middle", "end"))
        lines.append(
            f"| {name} | {rss} | {p['growth_mib']:+.2f} | {p['growth_second_half_mib']:+.2f} "
            f"| {p['slope_mib_per_min']:+.3f} | {p['fds']['start']} / {p['fds']['end']} |"
        )
    after = r["after_traffic"]
    lines += [
        "",
        f"after the traffic: router streams in flight {after['router_active_streams']:.0f}",
    ]
    for name, values in after.items():
        if name.startswith("model-"):
            lines[-1] += (
                f", {name} streams {values['active_streams']:.0f} "
                f"(engine unfinished {values['unfinished']:.0f})"
            )
    for example in r["unexpected_examples"][:5]:
        lines.append(f"unexpected: {example}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The soak's options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic duration")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after these")
    parser.add_argument("--rate", type=float, default=40.0, help="requests started per second")
    parser.add_argument("--concurrency", type=int, default=32, help="most calls in flight")
    parser.add_argument("--warmup-seconds", type=float, default=30.0, help="before 'start' RSS")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="RSS sampling period")
    parser.add_argument("--seed", type=int, default=1, help="of the request mix")
    parser.add_argument("--run-dir", type=Path, help="logs and config (default: under .cache)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="figures written here")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace the router's allocations (slow)"
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[kind.name for kind in KINDS],
        help="leave this kind out of the mix (repeatable)",
    )
    parser.add_argument(
        "--malloc", action="store_true", help="log the router's glibc heap figures (malloc.tsv)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; exit code 1 when an outcome was not the expected one."""
    args = parse_args(argv)
    run_dir = args.run_dir or ROOT / ".cache" / "bench" / "soak-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    # Fresh keys every run: nothing secret is stored anywhere but in this process and the
    # router's config (as digests).
    keys = {"main": secrets.token_urlsafe(24), "limited": secrets.token_urlsafe(24)}
    keys["bad"] = secrets.token_urlsafe(24)
    watch = (args.sample_seconds, args.tracemalloc) if args.tracemalloc or args.malloc else None
    with services(run_dir, keys, watch) as procs:
        tally, sampler, elapsed = asyncio.run(soak(args, procs, keys))
        result = summary(args, tally, sampler, elapsed)
        result["after_traffic"] = after_traffic(procs)
    result["run_dir"] = str(run_dir)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 1 if result["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
