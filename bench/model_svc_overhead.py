"""Overhead of the tierroute model service over vLLM's own OpenAI-compatible server.

Both servers run the same model folder with the same engine settings; the same raw-text
prompts are sent greedily with the same ``max_tokens``, so both generate the same tokens. The
two servers are up at the same time but measured alternately (ours, theirs, per concurrency
level and round), so drifting load on the machine affects both alike. Reported per level:
client-side TTFT p50/p99 and aggregate completion tokens per second (total tokens / wall time).

    python bench/model_svc_overhead.py --concurrency 1 8 32 --json runs/overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from tierroute.launch import ServiceProcess, free_port, launch_module
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc
from tierroute_tools.modelprep import CATALOG, default_cache_dir, model_path

PROMPTS = (
    "The history of the printing press begins",
    "Here is a short explanation of how vaccines work:",
    "A recipe for a simple tomato soup:",
    "The three most important ideas in economics are",
    "Once upon a time in a small village by the sea,",
    "To write a good unit test, you should",
    "The main differences between cats and dogs are",
    "Photosynthesis is the process by which",
    "In the year 2050, cities will",
    "The rules of chess can be summarised as follows:",
    "A beginner's guide to running a marathon:",
    "The water cycle consists of",
    "Why the sky is blue, explained simply:",
    "Ten tips for learning a new language:",
    "The French Revolution started because",
    "How a computer stores numbers:",
)


@dataclass
class LevelResult:
    """Measurements of one server at one concurrency level (possibly several rounds)."""

    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    frontend_cpu_seconds: float = 0.0
    """CPU time of the serving front-end process (gRPC or HTTP server plus vLLM's
    AsyncLLM), excluding the engine core and worker processes."""

    def frontend_cpu_ms_per_token(self) -> float:
        """Front-end CPU milliseconds per generated token: the overhead, independent of load."""
        return 1000 * self.frontend_cpu_seconds / self.tokens if self.tokens else 0.0

    def tokens_per_second(self) -> float:
        """Aggregate completion tokens per wall-clock second."""
        return self.tokens / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """TTFT percentile in seconds (nearest rank)."""
        ordered = sorted(self.ttfts)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]


# One request: (prompt, max_tokens) -> (ttft seconds, completion tokens).
Requester = Callable[[str, int], Awaitable[tuple[float, int]]]


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
        for child in children:
            found += _descendants(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its descendants except vLLM's engine core and
    workers: what the serving front end costs, wherever the server put it (Linux ``/proc``)."""
    total = 0.0
    for member in _descendants(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if name.startswith(("VLLM::EngineCor", "VLLM::Worker")):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def run_level(
    request: Requester, concurrency: int, count: int, max_tokens: int, pid: int | None = None
) -> LevelResult:
    """Send ``count`` requests with ``concurrency`` in flight; collect TTFTs and tokens."""
    result = LevelResult()
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(PROMPTS[index % len(PROMPTS)])

    async def worker() -> None:
        while not queue.empty():
            prompt = queue.get_nowait()
            ttft, tokens = await request(prompt, max_tokens)
            result.ttfts.append(ttft)
            result.tokens += tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    if pid is not None:
        result.frontend_cpu_seconds = cpu_seconds(pid) - cpu_before
    return result


def grpc_requester(stub: model_service_pb2_grpc.ModelServiceStub) -> Requester:
    """Streams ``ModelService.Generate`` and times the first delta."""

    async def request(prompt: str, max_tokens: int) -> tuple[float, int]:
        message = model_service_pb2.GenerateRequest(
            # Raw, as vLLM's /v1/completions takes it: the same tokens on both sides.
            prompt=common_pb2.Prompt(text=prompt, raw=True),
            sampling=common_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0),
        )
        started = time.perf_counter()
        ttft = 0.0
        tokens = 0
        async for event in stub.Generate(message, timeout=300):
            if event.HasField("delta"):
                if not ttft and event.delta.token_ids:
                    ttft = time.perf_counter() - started
            else:
                tokens = event.finished.usage.completion_tokens
        return ttft, tokens

    return request


def http_requester(
    session: aiohttp.ClientSession, base_url: str, model: str, logprobs: int | None
) -> Requester:
    """Streams ``/v1/completions`` (server-sent events) and times the first text chunk.

    ``logprobs=0`` asks for the sampled token's log-probability, the same engine work the model
    service requests for its confidence score.
    """

    async def request(prompt: str, max_tokens: int) -> tuple[float, int]:
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if logprobs is not None:
            body["logprobs"] = logprobs
        started = time.perf_counter()
        ttft = 0.0
        tokens = 0
        async with session.post(f"{base_url}/v1/completions", json=body) as response:
            response.raise_for_status()
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                if not ttft and chunk.get("choices"):
                    ttft = time.perf_counter() - started
                if chunk.get("usage"):
                    tokens = int(chunk["usage"]["completion_tokens"])
        return ttft, tokens

    return request


def start_vllm_server(
    model: Path, served_name: str, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """vLLM's OpenAI-compatible server with the same engine settings as the model service."""
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", served_name,
        "--dtype", "bfloat16", "--max-model-len", str(args.max_model_len),
        "--max-num-seqs", str(args.max_num_seqs), "--enforce-eager",
        "--disable-log-stats", "--disable-uvicorn-access-log",
        "--host", "127.0.0.1", "--port", str(args.vllm_port),
    ]  # fmt: skip
    env = {**os.environ, **engine_env(args)}
    log = (args.log_dir / "vllm_openai.log").open("w")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_http_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM's server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"vLLM's server was not ready after {timeout:.0f} s")


def engine_env(args: argparse.Namespace) -> dict[str, str]:
    """Environment both servers share (vLLM CPU settings, offline)."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": str(args.kv_cache_gib),
        "VLLM_CPU_OMP_THREADS_BIND": args.cpu_bind,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def start_model_service(model: Path, served_name: str, args: argparse.Namespace) -> ServiceProcess:
    """The tierroute model service with the same engine settings."""
    env = {
        **engine_env(args),
        "TIERROUTE_ENGINE__MAX_MODEL_LEN": str(args.max_model_len),
        "TIERROUTE_ENGINE__MAX_NUM_SEQS": str(args.max_num_seqs),
        "TIERROUTE_ENGINE__KV_CACHE_GIB": str(args.kv_cache_gib),
        "TIERROUTE_ENGINE__CPU_THREADS_BIND": args.cpu_bind,
        "TIERROUTE_ENGINE__SERVED_NAME": served_name,
        "TIERROUTE_LIMITS__MAX_CONCURRENT_STREAMS": str(max(args.concurrency) * 2),
        "TIERROUTE_LOGGING__LEVEL": "WARNING",
    }
    return launch_module(
        "model_svc",
        ["--tier", "bench", "--model", str(model)],
        env={
            **env,
            "TIERROUTE_PRICES__INPUT_USD_PER_MTOK": "0",
            "TIERROUTE_PRICES__OUTPUT_USD_PER_MTOK": "0",
        },
        timeout_seconds=args.start_timeout,
        log_path=args.log_dir / "model_svc.log",
    )


async def measure(
    args: argparse.Namespace, ours_address: str, served_name: str, pids: dict[str, int]
) -> dict[str, dict[int, list[LevelResult]]]:
    """Alternate ours/theirs for every level and round; results per server, level and round."""
    results: dict[str, dict[int, list[LevelResult]]] = {"tierroute": {}, "vllm": {}}
    base_url = f"http://127.0.0.1:{args.vllm_port}"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        grpc.aio.insecure_channel(ours_address) as channel,
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
    ):
        requesters = {
            "tierroute": grpc_requester(
                model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
            ),
            "vllm": http_requester(session, base_url, served_name, args.vllm_logprobs),
        }
        for requester in requesters.values():  # warm both paths (connections, caches)
            await run_level(requester, 2, 4, 8)
        for round_index in range(args.rounds):
            for concurrency in args.concurrency:
                count = max(args.min_requests, concurrency * args.requests_per_slot)
                # Alternate who goes first, so neither side always follows the other.
                order = list(requesters) if round_index % 2 == 0 else list(reversed(requesters))
                for name in order:
                    level = await run_level(
                        requesters[name], concurrency, count, args.max_tokens, pids[name]
                    )
                    results[name].setdefault(concurrency, []).append(level)
                    print(
                        f"round {round_index + 1} c={concurrency:<3d} {name:9s} "
                        f"{level.tokens_per_second():7.1f} tok/s  "
                        f"ttft p50 {1000 * level.percentile(50):7.1f} ms  "
                        f"front-end {level.frontend_cpu_ms_per_token():5.2f} CPU ms/token",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


def pooled(rounds: list[LevelResult]) -> LevelResult:
    """All rounds of one server and level as one measurement."""
    total = LevelResult()
    for level in rounds:
        total.ttfts += level.ttfts
        total.tokens += level.tokens
        total.seconds += level.seconds
        total.frontend_cpu_seconds += level.frontend_cpu_seconds
    return total


def report(
    results: dict[str, dict[int, list[LevelResult]]], concurrency: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Print the Markdown table; return the JSON figures.

    Ratios and TTFT differences are medians over rounds of pairs measured back to back, which
    keeps them meaningful when other work on the machine comes and goes; the absolute figures
    pool all rounds. Each round's ratio is kept too (``tok_s_ratio_rounds``), so the run-to-run
    spread is quoted with the median.
    """
    names: tuple[str, ...] = (
        "tok_s_ratio",
        "ttft_p50_delta_ms",
        "ttft_p99_ms",
        "tok_s",
        "vllm_tok_s",
        "ttft_p50_ms",
        "vllm_ttft_p50_ms",
        "vllm_ttft_p99_ms",
        "frontend_cpu_ms_per_token",
        "vllm_frontend_cpu_ms_per_token",
    )
    figures: dict[str, dict[str, Any]] = {name: {} for name in names}
    figures["tok_s_ratio_rounds"] = {}
    print(
        "| concurrency | server | TTFT p50 (ms) | TTFT p99 (ms) | tokens/s | ratio (paired) "
        "| front-end CPU ms/token |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for c in concurrency:
        pairs = list(zip(results["tierroute"][c], results["vllm"][c], strict=True))
        rounds = [a.tokens_per_second() / b.tokens_per_second() for a, b in pairs]
        ratio = statistics.median(rounds)
        delta = statistics.median(a.percentile(50) - b.percentile(50) for a, b in pairs)
        ours, theirs = pooled(results["tierroute"][c]), pooled(results["vllm"][c])
        key = str(c)
        figures["tok_s_ratio"][key] = round(ratio, 4)
        figures["tok_s_ratio_rounds"][key] = [round(r, 4) for r in rounds]
        figures["ttft_p50_delta_ms"][key] = round(1000 * delta, 2)
        figures["ttft_p99_ms"][key] = round(1000 * ours.percentile(99), 2)
        figures["tok_s"][key] = round(ours.tokens_per_second(), 1)
        figures["vllm_tok_s"][key] = round(theirs.tokens_per_second(), 1)
        figures["ttft_p50_ms"][key] = round(1000 * ours.percentile(50), 2)
        figures["vllm_ttft_p50_ms"][key] = round(1000 * theirs.percentile(50), 2)
        figures["vllm_ttft_p99_ms"][key] = round(1000 * theirs.percentile(99), 2)
        figures["frontend_cpu_ms_per_token"][key] = round(ours.frontend_cpu_ms_per_token(), 3)
        figures["vllm_frontend_cpu_ms_per_token"][key] = round(
            theirs.frontend_cpu_ms_per_token(), 3
        )
        for name, level in (("vLLM OpenAI (HTTP)", theirs), ("tierroute (gRPC)", ours)):
            p50, p99 = 1000 * level.percentile(50), 1000 * level.percentile(99)
            shown = "" if level is theirs else f"{ratio:.3f}"
            tok_s, cpu = level.tokens_per_second(), level.frontend_cpu_ms_per_token()
            print(f"| {c} | {name} | {p50:.1f} | {p99:.1f} | {tok_s:.1f} | {shown} | {cpu:.2f} |")
    return figures


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="model folder (default: the prepared small tier)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--requests-per-slot", type=int, default=2, help="requests per level = c * this"
    )
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--kv-cache-gib", type=int, default=1)
    parser.add_argument(
        "--cpu-bind", default="auto", help="VLLM_CPU_OMP_THREADS_BIND of both servers"
    )
    parser.add_argument("--start-timeout", type=float, default=300)
    parser.add_argument("--log-dir", type=Path, default=Path(".cache") / "bench")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--vllm-logprobs",
        type=lambda value: None if value == "none" else int(value),
        default=0,
        help="logprobs asked of vLLM's server: 0 (the sampled token's, like the model service; "
        "default) or none",
    )
    args = parser.parse_args(argv)
    args.vllm_port = free_port()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start both servers, measure alternately, print the table, stop both."""
    args = parse_args(argv)
    model = args.model or model_path(CATALOG["small"], default_cache_dir())
    served_name = model.name
    args.log_dir.mkdir(parents=True, exist_ok=True)
    load_start = round(os.getloadavg()[0], 2)
    print(f"load average at the start: {load_start:.1f}", file=sys.stderr)
    vllm_server = start_vllm_server(model, served_name, args)
    try:
        ours = start_model_service(model, served_name, args)
        try:
            wait_http_ready(
                f"http://127.0.0.1:{args.vllm_port}/health", vllm_server, args.start_timeout
            )
            pids = {"tierroute": ours.pid, "vllm": vllm_server.pid}
            results = asyncio.run(measure(args, ours.address, served_name, pids))
        finally:
            ours.stop()
    finally:
        vllm_server.terminate()
        try:
            vllm_server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            vllm_server.kill()
            vllm_server.wait()
        # Its engine processes share its process group; none may outlive the benchmark.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(vllm_server.pid, signal.SIGKILL)
    figures = report(results, args.concurrency)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    figures["run"] = {
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": round(os.getloadavg()[0], 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
