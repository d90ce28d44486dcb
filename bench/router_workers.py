"""All cores: one router worker vs one per core, side by side (routed streams/s, TTFT, CPU).

The fast scripted model service of ``bench/router_overhead.py`` (no engine) serves as both
tiers; two routers run in turn in front of it, ``workers.count: 1`` and ``workers.count: N``
(``auto`` by default: the cores given). Load processes keep ``--concurrency`` streams open over
``--connections`` connections each (the kernel's ``SO_REUSEPORT`` spreads connections, not
calls, over the workers, so one connection would stay on one worker) for ``--duration``
seconds; completed streams per second, TTFT p50/p99 under that load, the router's CPU
seconds per stream (supervisor and workers, from ``/proc``). The load processes and the model
service share the machine's cores with the router: on a 2-core host the speed-up is bounded
by what they leave.

    python bench/router_workers.py [--workers auto] [--encoder none|static] [--duration 10]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import router_overhead as overhead
from router_svc.workers import WorkerSettings, worker_count
from tierroute.v1 import router_service_pb2

ROOT = Path(__file__).resolve().parents[1]


async def load(
    target: str, connections: int, concurrency: int, duration: float, mode: int
) -> dict[str, Any]:
    """``concurrency`` streams over ``connections`` channels for ``duration`` seconds."""
    completed = errors = 0
    ttfts: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        callers = []
        for _ in range(connections):
            # A local subchannel pool: grpc would otherwise share one connection between them.
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            )
            caller = overhead.Caller(channel, True, mode)
            await caller.call()  # connect first
            callers.append(caller)
        end = time.perf_counter() + duration

        async def user(caller: overhead.Caller) -> None:
            nonlocal completed, errors
            while time.perf_counter() < end:
                try:
                    ttft, _, _ = await caller.call()
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                completed += 1
                ttfts.append(ttft * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(user(callers[i % connections]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"completed": completed, "errors": errors, "seconds": elapsed, "ttft_ms": ttfts}


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and its children (the supervisor and its workers)."""
    total = float(overhead.cpu_seconds(root))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == root:
                    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_for_workers(log: Path, count: int, timeout: float = 90) -> None:
    """Until ``count`` router processes logged that they serve."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count('"event": "ready"') >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} router workers ready; see {log}")


def run_load(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """``args.load_processes`` load processes at once; their results merged."""
    argv = [sys.executable, __file__, "--load-worker", target]
    argv += ["--connections", str(args.connections), "--duration", str(args.duration)]
    argv += ["--concurrency", str(max(1, args.concurrency // args.load_processes))]
    argv += ["--mode", str(args.mode)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(args.load_processes)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    ttfts = [t for r in results for t in r["ttft_ms"]]
    completed = sum(r["completed"] for r in results)
    return {
        "completed": completed,
        "streams_per_s": completed / max(r["seconds"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "ttft_p50_ms": statistics.median(ttfts) if ttfts else None,
        "ttft_p99_ms": overhead.percentile(ttfts, 99) if ttfts else None,
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """One router per worker count in turn, the model service shared; the results."""
    counts = [1, worker_count(WorkerSettings(count=args.workers))]
    model_port = overhead.free_port()
    model = f"127.0.0.1:{model_port}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        serve = [sys.executable, overhead.__file__, "--serve-model", str(model_port)]
        stack.enter_context(overhead.process(serve, Path(tmp) / "model.log"))
        overhead.wait_serving(model)
        for count in counts:
            config = Path(tmp) / f"router-{count}.yaml"
            overhead.router_config(config, model, args.encoder)
            settings = json.loads(config.read_text())
            settings["workers"] = {"count": count}
            config.write_text(json.dumps(settings))
            port = overhead.free_port()
            log = Path(tmp) / f"router-{count}.log"
            argv = [sys.executable, "-m", "router_svc", "--config", str(config)]
            argv += ["--port", str(port), "--metrics-port", str(overhead.free_port())]
            env = {**os.environ, "TIERROUTE_LOGGING__LEVEL": "INFO"}
            with overhead.process(argv, log, env) as router:
                overhead.wait_serving(f"127.0.0.1:{port}")
                wait_for_workers(log, count)
                run_load(f"127.0.0.1:{port}", argparse.Namespace(**{**vars(args), "duration": 2}))
                before = tree_cpu_seconds(router.pid)
                figures = run_load(f"127.0.0.1:{port}", args)
                used = tree_cpu_seconds(router.pid) - before
            figures["cpu_us_per_stream"] = used / max(1, figures["completed"]) * 1e6
            results[str(count)] = figures
            print(f"{count} worker(s): {figures['streams_per_s']:.0f} streams/s", file=sys.stderr)
    one, many = results["1"], results[str(counts[-1])]
    return {
        "workers": {"one": 1, "all": counts[-1]},
        "routed_streams_per_s": {"one": one["streams_per_s"], "all": many["streams_per_s"]},
        "speedup": many["streams_per_s"] / one["streams_per_s"],
        "runs": results,
        "settings": {
            "encoder": args.encoder,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "connections_per_load_process": args.connections,
            "load_processes": args.load_processes,
            "mode": router_service_pb2.FallbackMode.Name(args.mode),
            "cpus": os.cpu_count(),
            "cores_given": worker_count(WorkerSettings(count="auto")),
        },
    }


def table(result: dict[str, Any]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| router | routed streams/s | TTFT p50 ms | TTFT p99 ms | router CPU µs/stream | errors |",
        "|---|---|---|---|---|---|",
    ]
    for count, r in result["runs"].items():
        lines.append(
            f"| {count} worker(s) | {r['streams_per_s']:.0f} | {r['ttft_p50_ms']:.2f} "
            f"| {r['ttft_p99_ms']:.2f} | {r['cpu_us_per_stream']:.0f} | {r['errors']} |"
        )
    lines.append(f"\nspeed-up, all workers vs one: {result['speedup']:.2f}x")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options of the benchmark and of its load processes."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="auto", help="router workers to compare with 1")
    parser.add_argument("--encoder", choices=("none", "static", "minilm"), default="none")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--concurrency", type=int, default=64, help="streams kept open")
    parser.add_argument("--connections", type=int, default=8, help="channels per load process")
    parser.add_argument("--load-processes", type=int, default=2, help="load processes")
    parser.add_argument(
        "--mode",
        type=int,
        default=router_service_pb2.FALLBACK_MODE_STREAMING,
        help="FallbackMode number of the routed requests (2: STREAMING)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--load-worker", metavar="TARGET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers != "auto":
        args.workers = int(args.workers)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its load processes)."""
    args = parse_args(argv)
    if args.load_worker is not None:
        result = asyncio.run(
            load(args.load_worker, args.connections, args.concurrency, args.duration, args.mode)
        )
        print(json.dumps(result))
        return 0
    result = benchmark(args)
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
