"""Overhead of the OpenAI-compatible endpoint, next to LiteLLM's proxy as the peer figure.

Two side-by-side measurements on this machine, each against scripted backends that stream the
same token schedule (first token after ``--first-token-ms``, then one token every
``--token-ms``):

* ours: the real router (``python -m router_svc``, classifier off, STREAMING mode so tokens
  flow at once) over scripted ``ModelService`` tiers, called directly over gRPC and through
  ``python -m openai_gateway``: the difference is the endpoint's added cost;
* LiteLLM: a scripted OpenAI-compatible backend called directly and through ``litellm``'s proxy.

Like with like: LiteLLM's proxy refuses to start without a master key and checks it on every
request, so the router checks API keys too (``auth.enabled`` with one throw-away key, sent by
the gRPC baseline and through the endpoint alike); ``--router-auth off`` measures the router
without key checks, as runs before this option did. The JSON records which.

Both HTTP paths are driven by the same raw ``httpx`` streaming client. Reported: time to first
token (TTFT) p50/p99 one request at a time, and requests/s at ``--concurrency``.

    .venv/bin/python bench/openai_overhead.py [--requests 300] [--json out.json]

LiteLLM conflicts with the project's venv, so it lives in its own: ``.cache/bench-venv``
(created on first use with ``pip install 'litellm[proxy]==LITELLM_VERSION'``; ``--skip-litellm``
leaves it out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
LITELLM_VERSION = "1.108.7"
PROMPT = "What is the capital of France?"


# -- scripted backends (run in their own process: --role tiers / --role backend) -------------


async def _serve_tiers(args: argparse.Namespace) -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

    class Tier(model_service_pb2_grpc.ModelServiceServicer):
        async def Generate(self, request: Any, context: Any) -> AsyncIterator[Any]:
            await asyncio.sleep(args.first_token_ms / 1000)
            for i in range(args.tokens):
                if i:
                    await asyncio.sleep(args.token_ms / 1000)
                delta = common_pb2.TokenDelta(
                    text=f" tok{i}", token_ids=[i + 1], logprobs=[-0.05], running_confidence=0.95
                )
                yield model_service_pb2.GenerateResponse(delta=delta)
            confidence = common_pb2.Confidence(score=0.95, token_count=args.tokens)
            usage = common_pb2.Usage(prompt_tokens=12, completion_tokens=args.tokens)
            finished = model_service_pb2.Finished(
                finish_reason=common_pb2.FINISH_REASON_STOP, usage=usage, confidence=confidence
            )
            yield model_service_pb2.GenerateResponse(finished=finished)

    servers = []
    for port in args.ports:
        server = grpc.aio.server()
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(Tier(), server)  # type: ignore[no-untyped-call]
        checker = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await checker.set("", health_pb2.HealthCheckResponse.SERVING)
        await checker.set("tierroute.v1.ModelService", health_pb2.HealthCheckResponse.SERVING)
        servers.append(server)
    await _until_signal()
    for server in servers:
        await server.stop(0)


def _serve_backend(args: argparse.Namespace) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> StreamingResponse:
        await request.json()

        async def events() -> AsyncIterator[str]:
            await asyncio.sleep(args.first_token_ms / 1000)
            for i in range(args.tokens):
                if i:
                    await asyncio.sleep(args.token_ms / 1000)
                delta = {"content": f" tok{i}"} if i else {"role": "assistant", "content": " tok0"}
                yield _chunk(delta, None)
            yield _chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=args.ports[0], log_level="warning", loop="asyncio")


def _chunk(delta: dict[str, Any], finish: str | None) -> str:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def _until_signal() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


# -- clients -----------------------------------------------------------------------------------

Probe = Callable[[], Awaitable[float]]  # returns the TTFT of one request (seconds)


async def _wait_keyed(target: str, auth: dict[str, str], seconds: float) -> None:
    """Poll ``ListTiers`` with the key until a tier has a healthy endpoint."""
    from tierroute.v1 import router_service_pb2, router_service_pb2_grpc

    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
        while time.monotonic() < deadline:
            try:
                reply = await stub.ListTiers(
                    router_service_pb2.ListTiersRequest(), timeout=2, metadata=tuple(auth.items())
                )
                if any(tier.healthy_endpoints > 0 for tier in reply.tiers):
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"router {target} not ready after {seconds:.0f} s")


def _bench_key(key: str) -> dict[str, Any]:
    """The router's configuration of ``key``: one tenant, limits far above the load."""
    from router_svc.auth import hash_key

    return {
        "tenant": "bench",
        "sha256": hash_key(key),
        "permissions": {"streaming": True},
        "rate_per_second": 1e6,
        "burst": 1_000_000,
        "max_concurrent_streams": 4096,
    }


def grpc_probe(
    channel: grpc.aio.Channel, tokens: int, metadata: tuple[tuple[str, str], ...] = ()
) -> Probe:
    """One streamed ``RouterService.Generate``; TTFT at the first text delta."""
    from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

    stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
    request = router_service_pb2.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(
            chat=common_pb2.Chat(
                messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=PROMPT)]
            )
        ),
        sampling=common_pb2.SamplingParams(max_tokens=tokens),
        options=router_service_pb2.RouteOptions(
            fallback_mode=router_service_pb2.FALLBACK_MODE_STREAMING
        ),
    )

    async def probe() -> float:
        started = time.perf_counter()
        ttft = 0.0
        async for event in stub.Generate(request, timeout=30, metadata=metadata):
            if not ttft and event.WhichOneof("event") == "delta" and event.delta.text:
                ttft = time.perf_counter() - started
        return ttft

    return probe


def http_probe(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    extra: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Probe:
    """One streamed ``POST /v1/chat/completions``; TTFT at the first chunk with content."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        **extra,
    }

    async def probe() -> float:
        started = time.perf_counter()
        ttft = 0.0
        async with client.stream("POST", url, json=body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if ttft or not line.startswith("data: {"):
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    ttft = time.perf_counter() - started
        if not ttft:
            raise RuntimeError(f"no content streamed from {url}")
        return ttft

    return probe


async def measure(
    probes: dict[str, Probe], requests: int, concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    """TTFT p50/p99 one request at a time, and requests/s with ``concurrency`` in flight.

    The paths take turns in ``rounds`` slices, so background load on a shared machine falls on
    every path alike instead of on whichever ran last.
    """
    ttfts: dict[str, list[float]] = {name: [] for name in probes}
    busy: dict[str, float] = dict.fromkeys(probes, 0.0)
    per_round = max(requests // rounds, 1)
    for probe in probes.values():  # warm-up: connections, caches, lazy imports
        for _ in range(10):
            await probe()
    for _ in range(rounds):
        for name, probe in probes.items():
            ttfts[name].extend([await probe() for _ in range(per_round)])
        for name, probe in probes.items():
            queue = iter(range(per_round * 2))

            async def worker(probe: Probe = probe, queue: Any = queue) -> None:
                for _ in queue:
                    await probe()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            busy[name] += time.perf_counter() - started
    out = {}
    for name, values in ttfts.items():
        values.sort()
        out[name] = {
            "ttft_p50_ms": statistics.median(values) * 1000,
            "ttft_p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))] * 1000,
            "requests_per_s": per_round * 2 * rounds / busy[name],
            "samples": len(values),
        }
    return out


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port (closed again: a tiny race, fine on a quiet machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Child processes with their logs in the run directory; all stopped at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one child, logging to ``<run_dir>/<name>.log``."""
        log = (self.run_dir / f"{name}.log").open("wb")
        child = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=REPO
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        """SIGTERM every child, then wait."""
        for child in self.children:
            child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def wait_http(
    url: str, child: subprocess.Popen[bytes], seconds: float = 120, **headers: str
) -> None:
    """Poll ``url`` until it answers 2xx; fail when ``child`` exits or after ``seconds``."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2, headers=headers) as client:
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(f"{child.args!r} exited with {child.returncode}; see its log")
            try:
                if (await client.get(url)).is_success:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {seconds:.0f} s")


def litellm_bin(cache: Path) -> Path:
    """The ``litellm`` CLI in its own venv, installed on first use."""
    venv = cache.parent / "bench-venv"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return binary


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, measure each path, stop everything."""
    cache = Path(os.environ.get("TIERROUTE_CACHE_DIR", REPO / ".cache" / "tierroute"))
    run_dir = cache / "bench-openai"
    run_dir.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(SCRIPT)]
    schedule = [
        f"--tokens={args.tokens}",
        f"--first-token-ms={args.first_token_ms}",
        f"--token-ms={args.token_ms}",
    ]
    quiet = {"TIERROUTE_LOGGING__LEVEL": "WARNING"}  # no per-request log lines on either side
    tier_ports, router_port, http_port = [free_port(), free_port()], free_port(), free_port()
    config = {
        "server": {"host": "127.0.0.1", "metrics_port": None},
        "tiers": [
            {"name": name, "endpoints": [f"127.0.0.1:{port}"], "input_usd_per_mtok": price,
             "output_usd_per_mtok": price * 2}
            for name, port, price in (("small", tier_ports[0], 0.1), ("large", tier_ports[1], 1.0))
        ],
        "classifier": {"enabled": False},
        "limits": {"max_concurrent_streams": 1024},
    }  # fmt: skip
    key = f"tr-bench-{uuid.uuid4().hex}"  # this run's only key, never stored
    router_auth: dict[str, str] = {}
    if args.router_auth == "on":
        config["auth"] = {"enabled": True, "keys": [_bench_key(key)]}
        router_auth = {"authorization": f"Bearer {key}"}
    (run_dir / "router.yaml").write_text(json.dumps(config))  # JSON is YAML
    results: dict[str, Any] = {
        "settings": vars(args) | {"litellm": LITELLM_VERSION},
        # Both gateways check a key on every request unless --router-auth off.
        "key_checks": {
            "tierroute": args.router_auth == "on",
            "litellm": None if args.skip_litellm else True,
        },
    }
    procs = Processes(run_dir)
    try:
        procs.start("tiers", [*me, "--role=tiers", *schedule, *map(str, tier_ports)])
        procs.start(
            "router",
            [sys.executable, "-m", "router_svc", "--config", str(run_dir / "router.yaml"),
             "--port", str(router_port)],
            quiet,
        )  # fmt: skip
        endpoint = procs.start(
            "endpoint",
            [sys.executable, "-m", "openai_gateway", "--router", f"127.0.0.1:{router_port}",
             "--port", str(http_port)],
            quiet,
        )  # fmt: skip
        if router_auth:
            # The endpoint's /readyz asks the router's ListTiers without a key, which a router
            # with API keys refuses: wait for liveness and for one keyed request instead.
            await wait_http(f"http://127.0.0.1:{http_port}/healthz", endpoint, 60)
            await _wait_keyed(f"127.0.0.1:{router_port}", router_auth, 60)
        else:
            await wait_http(f"http://127.0.0.1:{http_port}/readyz", endpoint, 60)
        litellm = None if args.skip_litellm else await _start_litellm(procs, cache, me, schedule)
        results["loadavg_before"] = os.getloadavg()
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{router_port}") as channel,
            httpx.AsyncClient(timeout=30, limits=_limits(args)) as client,
        ):
            url = f"http://127.0.0.1:{http_port}/v1/chat/completions"
            extra = {"max_tokens": args.tokens, "tierroute": {"fallback_mode": "streaming"}}
            probes = {
                "grpc": grpc_probe(channel, args.tokens, tuple(router_auth.items())),
                "openai_endpoint": http_probe(client, url, "tierroute-auto", extra, router_auth),
            }
            if litellm is not None:
                (backend_port, proxy_port), auth = litellm
                for name, port in (("backend_direct", backend_port), ("litellm_proxy", proxy_port)):
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    extra = {"max_tokens": args.tokens}
                    probes[name] = http_probe(client, url, "scripted", extra, auth)
            results.update(await measure(probes, args.requests, args.concurrency, args.rounds))
        results["loadavg_after"] = os.getloadavg()
    finally:
        procs.stop()
    return results


def _limits(args: argparse.Namespace) -> httpx.Limits:
    return httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=64)


async def _start_litellm(
    procs: Processes, cache: Path, me: list[str], schedule: list[str]
) -> tuple[tuple[int, int], dict[str, str]]:
    """The scripted OpenAI backend and LiteLLM's proxy in front of it: ports and auth header."""
    backend_port, proxy_port = free_port(), free_port()
    config = {
        "model_list": [
            {
                "model_name": "scripted",
                "litellm_params": {
                    "model": "openai/scripted",
                    "api_base": f"http://127.0.0.1:{backend_port}/v1",
                    "api_key": "unused",
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
    }
    # A throw-away key for this run only: LiteLLM refuses to start without one, and checking
    # it on every request is part of what a deployed proxy costs.
    key = f"sk-bench-{uuid.uuid4().hex}"
    config_file = procs.run_dir / "litellm.yaml"
    config_file.write_text(json.dumps(config))
    binary = litellm_bin(cache)
    procs.start("backend", [*me, "--role=backend", *schedule, str(backend_port)])
    proxy = procs.start(
        "litellm",
        [str(binary), "--config", str(config_file), "--host", "127.0.0.1",
         "--port", str(proxy_port), "--num_workers", "1"],
        # Offline: the bundled model cost map, no telemetry, quiet logs.
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": key},
    )  # fmt: skip
    auth = {"authorization": f"Bearer {key}"}
    await wait_http(f"http://127.0.0.1:{proxy_port}/health/liveliness", proxy, 180, **auth)
    return (backend_port, proxy_port), auth


def table(results: dict[str, Any], concurrency: int) -> str:
    """The markdown table of docs/benchmarks.md."""
    rows = [
        ("gRPC `RouterService.Generate` (baseline)", "grpc", None),
        ("tierroute OpenAI endpoint -> same router", "openai_endpoint", "grpc"),
        ("scripted OpenAI backend, direct (baseline)", "backend_direct", None),
        (f"LiteLLM {LITELLM_VERSION} proxy -> same backend", "litellm_proxy", "backend_direct"),
    ]
    header = "| path | TTFT p50 (ms) | TTFT p99 (ms) | added TTFT p50 / p99 (ms) |"
    lines = [f"{header} req/s at {concurrency} in flight |", "|---|---:|---:|---:|---:|"]
    for label, key, base in rows:
        if key not in results:
            continue
        r = results[key]
        added = "-"
        if base is not None:
            b = results[base]
            p50 = r["ttft_p50_ms"] - b["ttft_p50_ms"]
            added = f"{p50:+.2f} / {r['ttft_p99_ms'] - b['ttft_p99_ms']:+.2f}"
        lines.append(
            f"| {label} | {r['ttft_p50_ms']:.2f} | {r['ttft_p99_ms']:.2f} | {added} "
            f"| {r['requests_per_s']:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per path")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight for req/s")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per answer")
    parser.add_argument("--first-token-ms", type=float, default=10.0)
    parser.add_argument("--token-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5, help="turns the paths take")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument(
        "--router-auth",
        choices=["on", "off"],
        default="on",
        help="API key checks in the router (on: like LiteLLM's master key)",
    )
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--role", choices=["tiers", "backend"], help=argparse.SUPPRESS)
    parser.add_argument("ports", nargs="*", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    """Entry point."""
    args = parse_args()
    if args.role == "tiers":
        asyncio.run(_serve_tiers(args))
        return 0
    if args.role == "backend":
        _serve_backend(args)
        return 0
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2, default=str))
    print(table(results, args.concurrency))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
