"""The signal study: real answers of each tier to a task mix, kept with their token log-probs.

For every item of a task file and every tier, the tool asks the tier's model service directly
(``ModelService.Generate``, the prompt as one user turn of a chat, so the service applies the
model's chat template), greedy, with an answer budget long enough to finish, and stores one
JSONL row: the answer text, its pieces (each TokenDelta's text and per-token log-probs, exactly
what the router sees), the Finished confidence and raw statistics, token counts, and whether
the answer is right (numbers by :mod:`tierroute.answers`, code by running the task's tests in
the sandbox). With ``--samples K`` it also draws K extra answers at ``--sample-temperature``
from the tiers named in ``--sample-tiers`` (self-consistency; their tokens are kept so their
cost can be counted). Rows are appended as they finish and a rerun skips rows already there,
so an interrupted run resumes. The report (:mod:`.signal_report`) is written at the end, or
alone with ``--report-only``.

It starts the ``pair`` preset's model services itself (each engine bound to its own core) unless
given running ones (``--tier-address small=HOST:PORT``), and stops what it started.

Run: ``python -m tierroute_tools.evaluation.signal_study --tasks data/tasks/traffic_mix.jsonl
--out .cache/signal_study/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tierroute.answers import is_correct, normalise_number
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

RECORDS = "records.jsonl"
DEFAULT_MAX_TOKENS = 320
DEFAULT_SAMPLE_TEMPERATURE = 0.7


@dataclass(frozen=True)
class StudyItem:
    """One row of the task file (``kind`` ``number`` or ``code``)."""

    id: str
    prompt: str
    answer: str
    kind: str
    source: str


def read_tasks(path: Path, limit: int | None = None) -> list[StudyItem]:
    """Items of a live-task JSONL file (code items included), the first ``limit``."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                items.append(
                    StudyItem(
                        str(row["id"]),
                        str(row["prompt"]),
                        str(row["answer"]),
                        str(row["kind"]),
                        str(row.get("source", "")),
                    )
                )
    return items if limit is None else items[:limit]


@dataclass(frozen=True)
class Job:
    """One answer to collect: an item, a tier, and which draw (0 greedy, 1.. samples)."""

    item: StudyItem
    tier: str
    sample: int
    temperature: float

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity of the row this job writes."""
        return (self.item.id, self.tier, self.sample)


class Judge:
    """Scores answers against gold: exact final number, or the code task's tests (sandboxed)."""

    def __init__(self, workers: int = 1) -> None:
        from tierroute_tools.evaluation.code_tasks import load_tasks

        self._tasks = {task.id: task for task in load_tasks("humaneval")}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")

    async def score(self, item: StudyItem, text: str) -> tuple[bool, str | None]:
        """Right or wrong, and the normalised answer (numbers) or the sandbox status (code)."""
        if item.kind == "number":
            return is_correct(text, item.answer, "number"), normalise_number(text)
        from tierroute_tools.evaluation.code_tasks import score

        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, score, self._tasks[item.id], text)
        return bool(result.passed), str(result.status)

    def close(self) -> None:
        """Wait for running sandboxes."""
        self._pool.shutdown(wait=True)


async def generate(
    stub: Any, job: Job, max_tokens: int, timeout: float, seed: int
) -> dict[str, Any]:
    """One answer from a model service: text, pieces, Finished facts."""
    sampling = common_pb2.SamplingParams(max_tokens=max_tokens, temperature=job.temperature)
    if job.temperature > 0:
        sampling.seed = seed + job.sample
    chat = common_pb2.Chat(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=job.item.prompt)]
    )
    request = model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(chat=chat),
        sampling=sampling,
        request_id=f"study-{job.tier}-{job.sample}-{job.item.id}"[:128],
    )
    pieces: list[tuple[str, list[float]]] = []
    finished: Any = None
    started = time.monotonic()
    async for event in stub.Generate(request, timeout=timeout):
        if event.HasField("delta"):
            pieces.append((event.delta.text, [float(x) for x in event.delta.logprobs]))
        elif event.HasField("finished"):
            finished = event.finished
    if finished is None:
        raise RuntimeError("the stream ended without Finished")
    confidence = finished.confidence
    return {
        "text": "".join(text for text, _ in pieces),
        "pieces": pieces,
        "confidence": confidence.score,
        "stats": {
            "mean_logprob": confidence.mean_logprob,
            "min_logprob": confidence.min_logprob,
            "min_window_logprob": confidence.min_window_logprob,
            "low_prob_fraction": confidence.low_prob_fraction,
            "token_count": float(confidence.token_count),
        },
        "finish_reason": common_pb2.FinishReason.Name(finished.finish_reason),
        "prompt_tokens": finished.usage.prompt_tokens,
        "completion_tokens": finished.usage.completion_tokens,
        "seconds": time.monotonic() - started,
    }


def done_keys(path: Path) -> set[tuple[str, str, int]]:
    """Keys of the rows already collected (rows with an error are retried)."""
    if not path.exists():
        return set()
    keys = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if row.get("error") is None:
                    keys.add((row["id"], row["tier"], int(row["sample"])))
    return keys


class Progress:
    """Items done / total with an ETA, printed at most every few seconds."""

    def __init__(self, name: str, total: int, every_seconds: float = 10.0) -> None:
        self._name, self._total, self._every = name, total, every_seconds
        self._done = 0
        self._started = self._last = time.monotonic()

    def tick(self) -> None:
        """Count one job; print when due or at the end."""
        self._done += 1
        now = time.monotonic()
        if now - self._last < self._every and self._done < self._total:
            return
        self._last = now
        rate = self._done / max(now - self._started, 1e-9)
        eta = (self._total - self._done) / rate if rate > 0 else float("inf")
        print(
            f"[{self._name}] {self._done}/{self._total} done, {rate * 60:.1f}/min, "
            f"ETA {eta / 60:.1f} min",
            flush=True,
        )


async def run_tier(
    address: str,
    jobs: Sequence[Job],
    out: Path,
    judge: Judge,
    *,
    name: str,
    max_tokens: int,
    concurrency: int,
    timeout: float,
    seed: int,
) -> None:
    """Collect ``jobs`` from one model service, appending each row to ``out`` as it finishes."""
    gate = asyncio.Semaphore(concurrency)
    progress = Progress(name, len(jobs))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]

        async def one(job: Job) -> None:
            row: dict[str, Any] = {
                "id": job.item.id,
                "tier": job.tier,
                "sample": job.sample,
                "temperature": job.temperature,
                "kind": job.item.kind,
                "source": job.item.source,
                "gold": job.item.answer,
                "prompt": job.item.prompt,
                "error": None,
            }
            async with gate:
                try:
                    row.update(await generate(stub, job, max_tokens, timeout, seed))
                except (grpc.RpcError, RuntimeError) as exc:
                    row["error"] = str(exc)[:500]
            if row["error"] is None:
                row["correct"], row["answer"] = await judge.score(job.item, row["text"])
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            progress.tick()

        await asyncio.gather(*(one(job) for job in jobs))


def plan(
    items: Sequence[StudyItem],
    tiers: Sequence[str],
    sample_tiers: Sequence[str],
    samples: int,
    temperature: float,
    done: set[tuple[str, str, int]],
) -> dict[str, list[Job]]:
    """Jobs per tier not collected yet: greedy answers first, then the extra samples."""
    jobs: dict[str, list[Job]] = {tier: [] for tier in tiers}
    for tier in tiers:
        draws = [(0, 0.0)]
        if tier in sample_tiers:
            draws += [(k, temperature) for k in range(1, samples + 1)]
        for sample, temp in draws:
            for item in items:
                job = Job(item, tier, sample, temp)
                if job.key not in done:
                    jobs[tier].append(job)
    return jobs


@contextlib.contextmanager
def model_services(
    tiers: Sequence[str], given: Mapping[str, str], run_dir: Path, start_timeout: float
) -> Iterator[dict[str, str]]:
    """Addresses of the tiers: the given ones, and the pair preset's services for the rest."""
    from tierroute.launch import ServiceProcess
    from tierroute.paths import default_cache_dir
    from tierroute_tools.platform import PRESETS

    specs = {spec.name: spec for spec in PRESETS["pair"]}
    started: dict[str, ServiceProcess] = {}
    try:
        for tier in tiers:
            if tier not in given:
                print(f"starting model service for tier {tier!r}", flush=True)
                started[tier] = ServiceProcess(
                    "model_svc",
                    ["--tier", tier],
                    metrics_port=-1,
                    env=specs[tier].env(default_cache_dir()),
                    log_path=run_dir / f"model-{tier}.log",
                )
        for tier, process in started.items():
            process.wait_until_serving(start_timeout)
            print(f"tier {tier!r} serving on {process.address}", flush=True)
        yield {**given, **{tier: p.address for tier, p in started.items()}}
    finally:
        for process in started.values():
            with contextlib.suppress(Exception):
                process.stop()


async def collect(args: argparse.Namespace, addresses: Mapping[str, str]) -> None:
    """Every tier's jobs, the tiers side by side (each engine has its own core)."""
    items = read_tasks(args.tasks, args.limit)
    out = args.out / RECORDS
    jobs = plan(
        items,
        args.tiers,
        args.sample_tiers,
        args.samples,
        args.sample_temperature,
        done_keys(out),
    )
    judge = Judge()
    try:
        await asyncio.gather(
            *(
                run_tier(
                    addresses[tier],
                    tier_jobs,
                    out,
                    judge,
                    name=tier,
                    max_tokens=args.max_tokens,
                    concurrency=args.concurrency,
                    timeout=args.timeout,
                    seed=args.seed,
                )
                for tier, tier_jobs in jobs.items()
                if tier_jobs
            )
        )
    finally:
        judge.close()


def _addresses(values: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        tier, sep, address = value.partition("=")
        if not sep:
            raise SystemExit(f"--tier-address wants TIER=HOST:PORT, got {value!r}")
        pairs[tier] = address
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: collect (unless ``--report-only``), then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiers", nargs="+", default=["small", "large"])
    parser.add_argument("--tier-address", action="append", default=[], metavar="TIER=ADDR")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--sample-tiers", nargs="*", default=["small"])
    parser.add_argument("--sample-temperature", type=float, default=DEFAULT_SAMPLE_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=17, help="sampling seed and split seed")
    parser.add_argument("--start-timeout", type=float, default=900.0)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        given = _addresses(args.tier_address)
        with model_services(args.tiers, given, args.out, args.start_timeout) as addresses:
            asyncio.run(collect(args, addresses))
    from tierroute_tools.evaluation.signal_report import write_report

    summary = write_report(args.out / RECORDS, args.out, seed=args.seed)
    print(json.dumps(summary.get("auroc", {}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
