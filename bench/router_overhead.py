"""Router overhead: caller -> router -> model service vs caller -> model service, side by side.

A fast scripted model service (no engine: it streams ``--tokens`` one-token deltas and a
confident ``Finished`` at once) runs in its own process, the real router (``python -m
router_svc``) in another, in front of it as both tiers. The benchmark then measures, in one run:

1. latency, one request at a time, direct and routed calls interleaved: time to the first token
   (TTFT) p50/p99 of each, and the difference = what the router adds;
2. throughput: ``--workers`` load processes keep ``--concurrency`` routed streams open for
   ``--duration`` seconds; completed streams per second, and the decision latency p99 the router
   reported (``Routed.decision.decision_latency_ms``) under that load; the same load direct.

The classifier is off by default (rules + default tier), so the figures are the router's own
cost; ``--classifier`` loads the ONNX artefact and the decision then includes its time.

    python bench/router_overhead.py [--requests 500] [--duration 10] [--json PATH]
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


async def latency(router: str, model: str, requests: int, mode: int) -> dict[str, list[float]]:
    """Interleaved one-at-a-time calls; TTFT samples (ms) of each path and decision latencies."""
    async with (
        grpc.aio.insecure_channel(router) as routed_channel,
        grpc.aio.insecure_channel(model) as direct_channel,
    ):
        routed = Caller(routed_channel, True, mode)
        direct = Caller(direct_channel, False, mode)
        for _ in range(50):  # warm-up: connections, code paths
            await routed.call()
            await direct.call()
        samples: dict[str, list[float]] = {"routed": [], "direct": [], "decision": []}
        for _ in range(requests):
            ttft, decision, _ = await routed.call()
            samples["routed"].append(ttft * 1000)
            samples["decision"].append(decision or 0.0)
            ttft, _, _ = await direct.call()
            samples["direct"].append(ttft * 1000)
    return samples


async def load(
    target: str, routed: bool, mode: int, concurrency: int, duration: float
) -> dict[str, Any]:
    """Keep ``concurrency`` streams open for ``duration`` seconds; count completions."""
    completed = 0
    errors = 0
    decisions: list[float] = []
    by_classifier = 0
    async with grpc.aio.insecure_channel(target) as channel:
        caller = Caller(channel, routed, mode)
        await caller.call()  # connect first
        end = time.perf_counter() + duration

        async def user() -> None:
            nonlocal completed, errors, by_classifier
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

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "completed": completed,
        "errors": errors,
        "seconds": elapsed,
        "decision_ms": decisions,
        "by_classifier": by_classifier,
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
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def router_config(path: Path, model: str, classifier: bool) -> None:
    """A two-tier router over the one fast model service."""
    tiers = [
        {"name": n, "endpoints": [model], "input_usd_per_mtok": p, "output_usd_per_mtok": 2 * p}
        for n, p in (("small", 0.1), ("large", 1.0))
    ]
    config = {
        "classifier": {"enabled": classifier},
        "tiers": tiers,
        "limits": {"max_concurrent_streams": 4096},
    }
    path.write_text(json.dumps(config))  # JSON is YAML


def measure(
    args: argparse.Namespace, router: str, model: str, router_pid: int, model_pid: int
) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, Any], tuple[float, float]]:
    """Latency, direct load, routed load, and the CPU seconds both servers used under the
    routed load."""
    samples = asyncio.run(latency(router, model, args.requests, args.mode))
    direct_load = run_load(model, False, args)
    before = cpu_seconds(router_pid), cpu_seconds(model_pid)
    routed_load = run_load(router, True, args)
    after = cpu_seconds(router_pid), cpu_seconds(model_pid)
    return samples, direct_load, routed_load, (after[0] - before[0], after[1] - before[1])


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Start the processes, measure, stop them; the results."""
    model_port, router_port = free_port(), free_port()
    model, router = f"127.0.0.1:{model_port}", f"127.0.0.1:{router_port}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "router.yaml"
        router_config(config, model, args.classifier)
        env = {**os.environ, "TIERROUTE_LOGGING__LEVEL": args.router_log_level}
        serve = [
            sys.executable,
            __file__,
            "--serve-model",
            str(model_port),
            "--tokens",
            str(args.tokens),
        ]
        route = [
            sys.executable,
            "-m",
            "router_svc",
            "--config",
            str(config),
            "--port",
            str(router_port),
        ]
        with process(serve, Path(tmp) / "model.log") as model_proc:
            wait_serving(model)  # before the router starts, so it finds its tiers healthy
            with process(route, Path(tmp) / "router.log", env) as router_proc:
                wait_serving(router)
                samples, direct_load, routed_load, cpu = measure(
                    args, router, model, router_proc.pid, model_proc.pid
                )
    streams = routed_load["completed"]
    router_cpu_us = cpu[0] / streams * 1e6
    model_cpu_us = cpu[1] / streams * 1e6
    routed, direct = samples["routed"], samples["direct"]
    return {
        "direct_ttft_p50_ms": statistics.median(direct),
        "direct_ttft_p99_ms": percentile(direct, 99),
        "routed_ttft_p50_ms": statistics.median(routed),
        "routed_ttft_p99_ms": percentile(routed, 99),
        "added_ttft_p50_ms": statistics.median(routed) - statistics.median(direct),
        "added_ttft_p99_ms": percentile(routed, 99) - percentile(direct, 99),
        "decision_p50_ms": statistics.median(samples["decision"]),
        "decision_p99_ms": percentile(samples["decision"], 99),
        "direct_streams_per_s": direct_load["streams_per_s"],
        "routed_streams_per_s": routed_load["streams_per_s"],
        "decision_p99_ms_under_load": routed_load["decision_p99_ms"],
        "classifier_share_under_load": routed_load["classifier_share"],
        "router_cpu_us_per_stream": router_cpu_us,
        "model_cpu_us_per_stream": model_cpu_us,
        "errors": direct_load["errors"] + routed_load["errors"],
        "settings": {
            "requests": args.requests,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "tokens": args.tokens,
            "classifier": args.classifier,
            "mode": router_service_pb2.FallbackMode.Name(args.mode),
            "cpus": os.cpu_count(),
        },
    }


def table(result: dict[str, Any]) -> str:
    """A Markdown table of the results."""
    r, s = result, result["settings"]
    classifier = "on" if s["classifier"] else "off"
    rows = [
        ("TTFT p50 (ms)", r["direct_ttft_p50_ms"], r["routed_ttft_p50_ms"], r["added_ttft_p50_ms"]),
        ("TTFT p99 (ms)", r["direct_ttft_p99_ms"], r["routed_ttft_p99_ms"], r["added_ttft_p99_ms"]),
        ("streams/s (max)", r["direct_streams_per_s"], r["routed_streams_per_s"], None),
    ]
    lines = [
        f"{s['tokens']} tokens per stream, {s['mode']}, classifier {classifier}, "
        f"{s['concurrency']} concurrent streams from {s['workers']} load processes, "
        f"{s['cpus']} CPUs",
        "",
        "| | direct | routed | added by the router |",
        "|---|---:|---:|---:|",
    ]
    for name, direct, routed, added in rows:
        extra = "" if added is None else f"{added:.2f}"
        lines.append(f"| {name} | {direct:.2f} | {routed:.2f} | {extra} |")
    router_cpu = r["router_cpu_us_per_stream"]
    lines += [
        "",
        f"Decision latency: p50 {r['decision_p50_ms']:.3f} ms, p99 {r['decision_p99_ms']:.3f} ms "
        f"one at a time; p99 {r['decision_p99_ms_under_load']:.3f} ms under full load"
        + (
            f" ({r['classifier_share_under_load']:.0%} decided by the classifier, the rest by "
            "the default tier after the classifier missed its time budget). "
            if s["classifier"]
            else ". "
        )
        + f"Errors: {r['errors']}.",
        f"CPU time per routed stream under load: router {router_cpu:.0f} us, scripted model "
        f"service {r['model_cpu_us_per_stream']:.0f} us (one router process saturates a core at "
        f"~{1e6 / router_cpu:.0f} streams/s).",
    ]
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
    parser.add_argument("--classifier", action="store_true", help="load the ONNX classifier")
    parser.add_argument(
        "--mode",
        type=int,
        default=router_service_pb2.FALLBACK_MODE_STREAMING,
        help="FallbackMode number of the routed requests (2: STREAMING)",
    )
    parser.add_argument("--router-log-level", default="INFO", help="the router's log level")
    parser.add_argument("--json", type=Path, help="also write the key figures to this file")
    parser.add_argument("--serve-model", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--routed", dest="routed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--direct", dest="routed", action="store_false", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its helper processes)."""
    args = parse_args(argv)
    if args.serve_model is not None:
        asyncio.run(serve_model(args.serve_model, args.tokens))
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
        keys = (
            "added_ttft_p50_ms",
            "added_ttft_p99_ms",
            "routed_streams_per_s",
            "decision_p99_ms_under_load",
        )
        args.json.write_text(json.dumps({k: result[k] for k in keys}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
