"""Router overhead: caller -> router -> model service vs caller -> model service, side by side.

A fast scripted model service (no engine: it streams ``--tokens`` one-token deltas and a
confident ``Finished`` at once) runs in its own process, the real router (``python -m
router_svc``) in another, in front of it as both tiers. A third process is a bare pass-through
proxy speaking the router's API (``RouterService.Generate``: metadata, ``Routed``, relayed
deltas, ``Finished``; no policy, cascade, ledger, metrics or logs): it shows what two extra
``grpc.aio`` hops cost by themselves, so the router's own logic can be told apart. In one run:

1. latency, one request at a time, the three paths interleaved: time to the first token (TTFT)
   p50/p99 of each; "added" = routed minus direct;
2. throughput: ``--workers`` load processes keep ``--concurrency`` streams open for
   ``--duration`` seconds on each path in turn; completed streams per second, the decision
   latency p99 the router reported (``Routed.decision.decision_latency_ms``) under that load,
   and the CPU time the router (and the proxy) used per stream, read from ``/proc`` (Linux).

``--encoders`` starts one router per classifier setting, side by side in the same run (the
direct and proxy paths are shared): ``none`` (classifier off: rules + default tier, the router's
own cost), ``static`` (the default static-embedding encoder) and ``minilm`` (the ONNX MiniLM).
The default is ``none``; ``--classifier`` is short for ``--encoders static``. The JSON keeps its
top-level keys for the first encoder listed and adds one entry per encoder under ``encoders``.

    python bench/router_overhead.py [--encoders none static minilm] [--requests 500]
        [--duration 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tierroute.v1 import (
    common_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    router_service_pb2,
    router_service_pb2_grpc,
)

PROMPT = "Tell me about Roman aqueducts."
ENCODERS = ("none", "static", "minilm")
ROOT = Path(__file__).resolve().parents[1]


# --- the scripted model service (runs in its own process) -----------------------------------


class FastModel(model_service_pb2_grpc.ModelServiceServicer):
    """Streams ``tokens`` one-token deltas, then a confident Finished, without waiting."""

    def __init__(self, tokens: int) -> None:
        self._deltas = [
            model_service_pb2.GenerateResponse(
                delta=common_pb2.TokenDelta(
                    text=f" w{i}", token_ids=[1000 + i], logprobs=[-0.05], running_confidence=0.9
                )
            )
            for i in range(tokens)
        ]
        self._finished = model_service_pb2.GenerateResponse(
            finished=model_service_pb2.Finished(
                finish_reason=common_pb2.FINISH_REASON_STOP,
                usage=common_pb2.Usage(prompt_tokens=12, completion_tokens=tokens),
                confidence=common_pb2.Confidence(score=0.9, token_count=tokens),
            )
        )

    async def Generate(
        self, request: model_service_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[model_service_pb2.GenerateResponse]:
        """The scripted answer."""
        for delta in self._deltas:
            yield delta
        yield self._finished


async def serve_model(port: int, tokens: int) -> None:
    """Serve :class:`FastModel` with grpc.health.v1 until killed."""
    server = grpc.aio.server()
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(FastModel(tokens), server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("tierroute.v1.ModelService", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


class BareProxy(router_service_pb2_grpc.RouterServiceServicer):
    """The router's API with none of its logic: relay one model service's stream."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = model_service_pb2_grpc.ModelServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def Generate(
        self, request: router_service_pb2.RouterServiceGenerateRequest, context: Any
    ) -> AsyncIterator[router_service_pb2.RouterServiceGenerateResponse]:
        """Metadata, Routed, the model's deltas, a Finished: the router's message pattern."""
        await context.send_initial_metadata((("x-request-id", "bare"),))
        yield router_service_pb2.RouterServiceGenerateResponse(
            routed=router_service_pb2.Routed(request_id="bare")
        )
        upstream = model_service_pb2.GenerateRequest(
            prompt=request.prompt, sampling=request.sampling
        )
        async for message in self._stub.Generate(upstream, timeout=context.time_remaining()):
            if message.WhichOneof("event") == "delta":
                yield router_service_pb2.RouterServiceGenerateResponse(delta=message.delta)
            else:
                yield router_service_pb2.RouterServiceGenerateResponse(
                    finished=router_service_pb2.RouterFinished(served_tier="bare")
                )


async def serve_proxy(port: int, target: str) -> None:
    """Serve :class:`BareProxy` with grpc.health.v1 until killed."""
    server = grpc.aio.server()
    router_service_pb2_grpc.add_RouterServiceServicer_to_server(BareProxy(target), server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


# --- callers ------------------------------------------------------------------------------------


def routed_request(mode: int) -> router_service_pb2.RouterServiceGenerateRequest:
    """The routed request: same prompt and sampling as the direct one."""
    return router_service_pb2.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=PROMPT),
        sampling=common_pb2.SamplingParams(max_tokens=64),
        options=router_service_pb2.RouteOptions(fallback_mode=mode),  # type: ignore[arg-type]
    )


def direct_request() -> model_service_pb2.GenerateRequest:
    """The direct request."""
    return model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(text=PROMPT), sampling=common_pb2.SamplingParams(max_tokens=64)
    )


class Caller:
    """Times one stream to its first token and its end, direct or through the router."""

    def __init__(self, channel: grpc.aio.Channel, routed: bool, mode: int) -> None:
        self._routed = routed
        if routed:
            self._stub: Any = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            self._request: Any = routed_request(mode)
        else:
            self._stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
            self._request = direct_request()

    async def call(self) -> tuple[float, float | None, str]:
        """(TTFT seconds, the router's decision latency in ms or None, the decision's reason)."""
        started = time.perf_counter()
        ttft = 0.0
        decision = None
        reason = ""
        async for event in self._stub.Generate(self._request, timeout=30):
            kind = event.WhichOneof("event")
            if kind == "routed":
                decision = event.routed.decision.decision_latency_ms
                reason = event.routed.decision.reason
            elif kind == "delta" and not ttft:
                ttft = time.perf_counter() - started
        return ttft, decision, reason


async def latency(paths: dict[str, str], requests: int, mode: int) -> dict[str, list[float]]:
    """Interleaved one-at-a-time calls on every path: TTFT samples (ms) per path, and each
    router's decision latencies (ms) under ``"decision:<path>"``."""
    async with contextlib.AsyncExitStack() as stack:
        callers = {}
        for name, target in paths.items():
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
            callers[name] = Caller(channel, name != "direct", mode)
        for _ in range(50):  # warm-up: connections, code paths
            for caller in callers.values():
                await caller.call()
        samples: dict[str, list[float]] = {name: [] for name in paths}
        samples |= {f"decision:{name}": [] for name in paths if is_router(name)}
        for _ in range(requests):
            for name, caller in callers.items():
                ttft, decision, _ = await caller.call()
                samples[name].append(ttft * 1000)
                if is_router(name):
                    samples[f"decision:{name}"].append(decision or 0.0)
    return samples


def is_router(path: str) -> bool:
    """Whether a path name is one of the routers (``routed:<encoder>``)."""
    return path.startswith("routed")


async def load(
    target: str, routed: bool, mode: int, concurrency: int, duration: float
) -> dict[str, Any]:
    """Keep ``concurrency`` streams open for ``duration`` seconds; count completions."""
    completed = 0
    errors = 0
    decisions: list[float] = []
    by_classifier = 0
    by_default = 0
    async with grpc.aio.insecure_channel(target) as channel:
        caller = Caller(channel, routed, mode)
        await caller.call()  # connect first
        end = time.perf_counter() + duration

        async def user() -> None:
            nonlocal completed, errors, by_classifier, by_default
            while time.perf_counter() < end:
                try:
                    _, decision, reason = await caller.call()
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                completed += 1
                if decision is not None:
                    decisions.append(decision)
                by_classifier += reason == "classifier"
                by_default += reason == "default"

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "completed": completed,
        "errors": errors,
        "seconds": elapsed,
        "decision_ms": decisions,
        "by_classifier": by_classifier,
        "by_default": by_default,
    }


# --- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(
    argv: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` for the duration of the block, then stop it (SIGTERM, then SIGKILL)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_serving(target: str, timeout: float = 60) -> None:
    """Block until ``target`` reports SERVING on grpc.health.v1."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} not serving after {timeout} s")
            time.sleep(0.1)


def run_load(target: str, routed: bool, args: argparse.Namespace) -> dict[str, Any]:
    """``args.workers`` load processes at once; their results merged."""
    per_worker = max(1, args.concurrency // args.workers)
    argv = [
        sys.executable,
        __file__,
        "--load-worker",
        target,
        "--routed" if routed else "--direct",
        "--concurrency",
        str(per_worker),
        "--duration",
        str(args.duration),
        "--mode",
        str(args.mode),
    ]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(args.workers)]
    results = [json.loads(p.communicate()[0]) for p in procs]
    seconds = max(r["seconds"] for r in results)
    decisions = [d for r in results for d in r["decision_ms"]]
    completed = sum(r["completed"] for r in results)
    return {
        "completed": completed,
        "streams_per_s": completed / seconds,
        "errors": sum(r["errors"] for r in results),
        "decision_p99_ms": percentile(decisions, 99) if decisions else None,
        "classifier_share": sum(r["by_classifier"] for r in results) / max(1, completed),
        "default_tier_decisions": sum(r["by_default"] for r in results),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def router_config(path: Path, model: str, encoder: str, default_tier: str | None = None) -> None:
    """A two-tier router over the one fast model service; ``encoder`` ``none`` = no classifier."""
    tiers = [
        {"name": n, "endpoints": [model], "input_usd_per_mtok": p, "output_usd_per_mtok": 2 * p}
        for n, p in (("small", 0.1), ("large", 1.0))
    ]
    config = {
        "classifier": {"enabled": encoder != "none"}
        | ({"encoder": encoder} if encoder != "none" else {}),
        "tiers": tiers,
        "limits": {"max_concurrent_streams": 4096},
    }
    if default_tier is not None:
        config["policy"] = {"default_tier": default_tier}
    path.write_text(json.dumps(config))  # JSON is YAML


def measure(
    args: argparse.Namespace, paths: dict[str, str], pids: dict[str, int]
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Latency samples, and per path its load results with the CPU seconds its server used."""
    samples = asyncio.run(latency(paths, args.requests, args.mode))
    loads = {}
    for name, target in paths.items():
        before = cpu_seconds(pids[name])
        loads[name] = run_load(target, name != "direct", args)
        print(f"load on {name}: {loads[name]['streams_per_s']:.0f} streams/s", file=sys.stderr)
        loads[name]["cpu_us_per_stream"] = (
            (cpu_seconds(pids[name]) - before) / max(1, loads[name]["completed"]) * 1e6
        )
    return samples, loads


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Start the processes, measure, stop them; the results."""
    routers = [f"routed:{encoder}" for encoder in args.encoders]
    ports = {name: free_port() for name in ("direct", "proxy", *routers)}
    paths = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        env = {**os.environ, "TIERROUTE_LOGGING__LEVEL": args.router_log_level}
        serve = [*me, "--serve-model", str(ports["direct"]), "--tokens", str(args.tokens)]
        proxy = [*me, "--serve-proxy", str(ports["proxy"]), "--target", paths["direct"]]
        model_proc = stack.enter_context(process(serve, Path(tmp) / "model.log"))
        wait_serving(paths["direct"])  # before the routers start: they find their tiers healthy
        pids = {"direct": model_proc.pid}
        pids["proxy"] = stack.enter_context(process(proxy, Path(tmp) / "proxy.log")).pid
        for name, encoder in zip(routers, args.encoders, strict=True):
            config = Path(tmp) / f"router-{encoder}.yaml"
            router_config(config, paths["direct"], encoder, args.default_tier)
            route = [sys.executable, "-m", "router_svc", "--config", str(config)]
            route += ["--port", str(ports[name])]
            log = Path(tmp) / f"router-{encoder}.log"
            pids[name] = stack.enter_context(process(route, log, env)).pid
        for target in paths.values():
            wait_serving(target)
        samples, loads = measure(args, paths, pids)
    ttft = {name: samples[name] for name in paths}
    p50 = {name: statistics.median(values) for name, values in ttft.items()}
    p99 = {name: percentile(values, 99) for name, values in ttft.items()}
    encoders = {}
    for name, encoder in zip(routers, args.encoders, strict=True):
        decisions = samples[f"decision:{name}"]
        encoders[encoder] = {
            "added_ttft_p50_ms": p50[name] - p50["direct"],
            "added_ttft_p99_ms": p99[name] - p99["direct"],
            "routed_streams_per_s": loads[name]["streams_per_s"],
            "cpu_us_per_stream": loads[name]["cpu_us_per_stream"],
            "decision_p50_ms": statistics.median(decisions),
            "decision_p99_ms": percentile(decisions, 99),
            "decision_p99_ms_under_load": loads[name]["decision_p99_ms"],
            "classifier_share_under_load": loads[name]["classifier_share"],
            # With a classifier on, "default" decisions are the ones that missed its time budget
            # (or saw it fail): the rules and the classifier decide everything else.
            "default_tier_decisions_under_load": loads[name]["default_tier_decisions"],
            "errors": loads[name]["errors"],
        }
    first = encoders[args.encoders[0]]
    return {
        "ttft_p50_ms": p50,
        "ttft_p99_ms": p99,
        "streams_per_s": {name: loads[name]["streams_per_s"] for name in paths},
        "cpu_us_per_stream": {name: loads[name]["cpu_us_per_stream"] for name in paths},
        **{key: first[key] for key in TOP_LEVEL_KEYS},
        "proxy_added_ttft_p50_ms": p50["proxy"] - p50["direct"],
        "decision_p50_ms": first["decision_p50_ms"],
        "decision_p99_ms": first["decision_p99_ms"],
        "classifier_share_under_load": first["classifier_share_under_load"],
        "errors": sum(load["errors"] for load in loads.values()),
        "encoders": encoders,
        "settings": {
            "requests": args.requests,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "tokens": args.tokens,
            "encoders": list(args.encoders),
            "mode": router_service_pb2.FallbackMode.Name(args.mode),
            "cpus": os.cpu_count(),
        },
    }


TOP_LEVEL_KEYS = (
    "added_ttft_p50_ms",
    "added_ttft_p99_ms",
    "routed_streams_per_s",
    "decision_p99_ms_under_load",
)
"""The JSON's historical keys (the first encoder's figures)."""


def table(result: dict[str, Any]) -> str:
    """Markdown tables of the results."""
    r, s = result, result["settings"]
    lines = [
        f"{s['tokens']} tokens per stream, {s['mode']}, "
        f"{s['concurrency']} concurrent streams from {s['workers']} load processes, "
        f"{s['cpus']} CPUs",
        "",
        "| path | TTFT p50 (ms) | TTFT p99 (ms) | streams/s | server CPU per stream (us) |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"direct": "direct", "proxy": "bare gRPC proxy"}
    names |= {f"routed:{e}": f"router, classifier {e}" for e in s["encoders"]}
    for key, name in names.items():
        lines.append(
            f"| {name} | {r['ttft_p50_ms'][key]:.2f} | {r['ttft_p99_ms'][key]:.2f} "
            f"| {r['streams_per_s'][key]:.0f} | {r['cpu_us_per_stream'][key]:.0f} |"
        )
    lines += [
        "",
        f"The bare proxy adds TTFT p50 {r['proxy_added_ttft_p50_ms']:+.2f} ms. Errors: "
        f"{r['errors']}.",
        "",
        "| classifier | added TTFT p50 / p99 (ms) | decision p50 / p99 one at a time (ms) "
        "| decision p99 under load (ms) | decided by the classifier under load "
        "| default tier under load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for encoder, e in r["encoders"].items():
        under_load = e["decision_p99_ms_under_load"]
        lines.append(
            f"| {encoder} | {e['added_ttft_p50_ms']:+.2f} / {e['added_ttft_p99_ms']:+.2f} "
            f"| {e['decision_p50_ms']:.3f} / {e['decision_p99_ms']:.3f} "
            f"| {under_load:.3f} | {e['classifier_share_under_load']:.0%} "
            f"| {e['default_tier_decisions_under_load']} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options of the benchmark and of its helper processes."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="sequential calls per path")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per path")
    parser.add_argument("--concurrency", type=int, default=64, help="streams kept open")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--tokens", type=int, default=8, help="tokens per scripted answer")
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=ENCODERS,
        default=None,
        help="one router per classifier setting, side by side (default: none)",
    )
    parser.add_argument(
        "--classifier", action="store_true", help="short for --encoders static (the default one)"
    )
    parser.add_argument(
        "--mode",
        type=int,
        default=router_service_pb2.FALLBACK_MODE_STREAMING,
        help="FallbackMode number of the routed requests (2: STREAMING)",
    )
    parser.add_argument("--router-log-level", default="INFO", help="the router's log level")
    parser.add_argument(
        "--default-tier",
        choices=("small", "large"),
        default=None,
        help="the tier rules-only routers send to (default: the cheapest)",
    )
    parser.add_argument("--json", type=Path, help="also write the key figures to this file")
    parser.add_argument("--serve-model", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--routed", dest="routed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--direct", dest="routed", action="store_false", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.encoders is None:
        args.encoders = ["static"] if args.classifier else ["none"]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its helper processes)."""
    args = parse_args(argv)
    if args.serve_model is not None:
        asyncio.run(serve_model(args.serve_model, args.tokens))
        return 0
    if args.serve_proxy is not None:
        asyncio.run(serve_proxy(args.serve_proxy, args.target))
        return 0
    if args.load_worker is not None:
        result = asyncio.run(
            load(args.load_worker, args.routed, args.mode, args.concurrency, args.duration)
        )
        print(json.dumps(result))
        return 0
    result = benchmark(args)
    print(table(result))
    if args.json is not None:
        figures = {k: result[k] for k in TOP_LEVEL_KEYS} | {"encoders": result["encoders"]}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
