"""Benchmark the router's decision: rules + tokenisation + ONNX classifier, on this machine.

Latency: p50 / p99 / max over ``--runs`` decisions (default 500) for prompts of 8 ... 8192
tokens (before truncation), for each model (fp32, int8) and intra-op thread count (1, 2),
timed around ``RuleSet.evaluate`` + one :meth:`OnnxClassifier.score_batch` call (the work of
one decision). The shipped configuration (int8, settings defaults) is also timed through the
async :meth:`OnnxClassifier.score`, thread-pool hop included, and its throughput measured with
1, 16 and 64 concurrent callers on 32-token prompts (also printed for ``batch_mode="padded"``).

    python bench/router_decision.py [--artifact-dir DIR] [--runs 500] [--json out.json]

Needs the artefact (``tierroute classifier build``). ``--json`` writes the shipped
configuration's ``{"p50_ms": {"8": ...}, "p99_ms": ..., "max_ms": ..., "decisions_per_s":
{"1": ..., "16": ..., "64": ...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from router_svc.classifier import ClassifierSettings, OnnxClassifier
from router_svc.rules import RuleSet, RulesSettings
from tierroute.classifier_artifact import (
    FP32_MODEL_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    default_artifact_dir,
)
from tierroute.outcomes import load_routellm

LENGTHS = (8, 32, 128, 512, 2048, 8192)
CONCURRENCY = (1, 16, 64)
THROUGHPUT_TOKENS = 32


def corpus_prompts(tokenizer: Tokenizer, tokens: int, count: int) -> list[str]:
    """``count`` distinct texts of exactly ``tokens`` tokens (before truncation, no specials).

    Cut from the routing data (real questions), so the tokenizer sees realistic text.
    """
    tokenizer.no_padding()
    tokenizer.no_truncation()
    rows = [o.prompt for o in load_routellm() if len(o.prompt) > 40]
    texts: list[str] = []
    for start in itertools.count(step=7):
        if len(texts) == count:
            return texts
        # Enough consecutive prompts to reach the length (about 4 characters per token).
        chunk, size = [], 0
        for row in rows[start % len(rows) :]:
            chunk.append(row)
            size += len(row)
            if size > tokens * 8:
                break
        text = "\n\n".join(chunk)
        encoding = tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) < tokens:
            continue
        texts.append(text[: encoding.offsets[tokens - 1][1]])
    raise AssertionError("unreachable")


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of a list of milliseconds."""
    values = np.asarray(samples_ms)
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def time_sync(
    decide: Callable[[str], object], prompts: Sequence[str], runs: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``runs`` decisions, cycling through ``prompts``.

    CPU time is the whole process's (every ONNX thread included); on a machine shared with
    other work it shows what a decision costs when it has a core to itself.
    """
    for text in itertools.islice(itertools.cycle(prompts), 20):
        decide(text)
    wall, cpu = [], []
    for text in itertools.islice(itertools.cycle(prompts), runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        decide(text)
        cpu.append((time.process_time() - started_cpu) * 1000.0)
        wall.append((time.perf_counter() - started) * 1000.0)
    return wall, cpu


async def time_async(
    classifier: OnnxClassifier, rules: RuleSet, prompts: Sequence[str], runs: int
) -> list[float]:
    """Like :func:`time_sync` through the async ``score`` (thread-pool hop included)."""
    for text in prompts[:20]:
        await classifier.score(text)
    samples = []
    for text in itertools.islice(itertools.cycle(prompts), runs):
        started = time.perf_counter()
        rules.evaluate(text)
        await classifier.score(text)
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


async def throughput(
    classifier: OnnxClassifier, rules: RuleSet, prompts: Sequence[str], concurrency: int
) -> float:
    """Decisions per second with ``concurrency`` callers each deciding in a loop."""
    total = max(400, 20 * concurrency)
    queue = iter(itertools.islice(itertools.cycle(prompts), total))

    async def caller() -> None:
        for text in queue:
            rules.evaluate(text)
            await classifier.score(text)

    await asyncio.gather(*(caller() for _ in range(concurrency)))  # warm-up pass
    queue = iter(itertools.islice(itertools.cycle(prompts), total))
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print tables (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact-dir", type=Path, default=default_artifact_dir())
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument(
        "--json", type=Path, default=None, help="write the shipped config's numbers"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    args = parser.parse_args(argv)

    tokenizer = Tokenizer.from_file(str(args.artifact_dir / TOKENIZER_FILE))
    prompts = {n: corpus_prompts(tokenizer, n, 50) for n in args.lengths}
    short = corpus_prompts(tokenizer, THROUGHPUT_TOKENS, 200)
    rules = RuleSet(RulesSettings())
    print(f"# router decision benchmark ({os.cpu_count()} CPUs, {args.runs} runs per cell)\n")
    print("| model | threads | " + " | ".join(f"{n} tok p50/p99/max ms" for n in args.lengths))
    print("|---|---|" + "---|" * len(args.lengths))
    cpu_rows: list[str] = []
    for model_file, threads in itertools.product((MODEL_FILE, FP32_MODEL_FILE), (1, 2)):
        settings = ClassifierSettings(model_path=args.artifact_dir / model_file, threads=threads)
        classifier = OnnxClassifier.load(settings)

        def decide(text: str, classifier: OnnxClassifier = classifier) -> object:
            rules.evaluate(text)
            return classifier.score_batch([text])

        cells, cpu_cells = [], []
        for n in args.lengths:
            wall, cpu = time_sync(decide, prompts[n], args.runs)
            stats = percentiles(wall)
            cells.append(f"{stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.1f}")
            cpu_cells.append(f"{np.percentile(cpu, 50):.2f}")
        classifier.close()
        name = "int8" if model_file == MODEL_FILE else "fp32"
        print(f"| {name} | {threads} | " + " | ".join(cells), flush=True)
        cpu_rows.append(f"| {name} | {threads} | " + " | ".join(cpu_cells))
    print("\nCPU time per decision, p50 ms (all threads of the process):\n")
    print("| model | threads | " + " | ".join(f"{n} tok" for n in args.lengths))
    print("|---|---|" + "---|" * len(args.lengths))
    print("\n".join(cpu_rows))

    shipped = OnnxClassifier.load(ClassifierSettings(model_path=args.artifact_dir / MODEL_FILE))
    result: dict[str, dict[str, float]] = {"p50_ms": {}, "p99_ms": {}, "max_ms": {}}

    async def shipped_run() -> dict[str, float]:
        for n in args.lengths:
            stats = percentiles(await time_async(shipped, rules, prompts[n], args.runs))
            for key in ("p50", "p99", "max"):
                result[f"{key}_ms"][str(n)] = round(stats[key], 3)
        return {str(c): round(await throughput(shipped, rules, short, c), 1) for c in CONCURRENCY}

    result["decisions_per_s"] = asyncio.run(shipped_run())
    shipped.close()
    padded = OnnxClassifier.load(
        ClassifierSettings(model_path=args.artifact_dir / MODEL_FILE, batch_mode="padded")
    )

    async def padded_run() -> dict[str, float]:
        return {str(c): await throughput(padded, rules, short, c) for c in CONCURRENCY}

    padded_rates = asyncio.run(padded_run())
    padded.close()
    print("\nshipped configuration (int8, defaults, async score incl. thread hop):")
    for n in args.lengths:
        print(
            f"  {n:>5} tokens: p50 {result['p50_ms'][str(n)]:.2f} ms, "
            f"p99 {result['p99_ms'][str(n)]:.2f} ms, max {result['max_ms'][str(n)]:.1f} ms"
        )
    rates = ", ".join(f"{c} callers {v:,.0f}/s" for c, v in result["decisions_per_s"].items())
    print(f"  throughput ({THROUGHPUT_TOKENS}-token prompts): {rates}")
    rates = ", ".join(f"{c} callers {v:,.0f}/s" for c, v in padded_rates.items())
    print(f"  same with batch_mode=padded: {rates}")
    print(f"  1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
