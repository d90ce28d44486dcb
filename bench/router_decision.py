"""Benchmark the router's decision: rules + tokenisation + classifier, per encoder, on this machine.

For each encoder in ``--encoders`` (default: ``static minilm``, side by side in one run):

- latency: p50 / p99 / max over ``--runs`` decisions (default 500) for prompts of 8 ... 8192
  tokens (before truncation), through the async ``score`` (MiniLM: thread-pool hop included);
- throughput with 1, 16 and 64 concurrent callers on 32-token prompts;
- full load: ``--load-callers`` callers (default 64) deciding through the router's own
  :class:`RoutingPolicy` (rules, classifier, the default 8 ms time budget) for
  ``--load-seconds``; the decision latency percentiles and how many decisions fell back to the
  default tier because the classifier missed its budget.

With MiniLM also the grid of models (fp32, int8) x intra-op threads (1, 2), timed around
``RuleSet.evaluate`` + one ``score_batch`` call (``--no-grid`` skips it).

    python bench/router_decision.py [--encoders static minilm] [--runs 500] [--json out.json]

Needs the artefacts (``tierroute classifier build --encoder all``). ``--json`` writes the
default encoder's ``{"p50_ms": {"8": ...}, "p99_ms": ..., "max_ms": ..., "decisions_per_s":
{"1": ..., "16": ..., "64": ...}}`` plus ``"full_load"`` and, per encoder, the same under
``"encoders": {"static": ..., "minilm": ...}``.
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
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from router_svc.classifier import (
    Classifier,
    ClassifierSettings,
    LoadedClassifier,
    OnnxClassifier,
    load_classifier,
)
from router_svc.config import PolicySettings
from router_svc.policy import REASON_DEFAULT, RoutingPolicy
from router_svc.rules import RuleSet, RulesSettings
from tierroute.classifier_artifact import (
    FP32_MODEL_FILE,
    MODEL_FILE,
    STATIC_SUBDIR,
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
    classifier: Classifier, rules: RuleSet, prompts: Sequence[str], runs: int
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
    classifier: Classifier, rules: RuleSet, prompts: Sequence[str], concurrency: int
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


async def full_load(
    classifier: LoadedClassifier, prompts: Sequence[str], callers: int, seconds: float
) -> dict[str, float]:
    """``callers`` concurrent decisions through the router's policy for ``seconds``."""
    policy = RoutingPolicy(
        ("small", "large"),
        rules=RuleSet(RulesSettings()),
        classifier=classifier,
        threshold=classifier.default_threshold,
        # The router's default budget: past it the default tier decides (a "fallback").
        classifier_timeout=PolicySettings().classifier_timeout_ms / 1000.0,
    )
    latencies: list[float] = []
    fallbacks = 0
    texts = itertools.cycle(prompts)
    end = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal fallbacks
        while time.perf_counter() < end:
            decision = await policy.decide(next(texts))
            latencies.append(decision.latency_seconds * 1000.0)
            fallbacks += decision.reason == REASON_DEFAULT
            await asyncio.sleep(0)  # let the other callers in, as a server's requests would

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    stats = percentiles(latencies)
    return {
        "p50_ms": round(stats["p50"], 4),
        "p99_ms": round(stats["p99"], 4),
        "max_ms": round(stats["max"], 3),
        "decisions_per_s": round(len(latencies) / elapsed, 1),
        "decisions": len(latencies),
        "budget_fallbacks": fallbacks,
    }


def grid(args: argparse.Namespace, prompts: dict[int, list[str]], rules: RuleSet) -> None:
    """MiniLM's model x threads grid (sync ``score_batch``), printed as Markdown."""
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
    print("\n".join(cpu_rows) + "\n")


def load_encoder(args: argparse.Namespace, encoder: str) -> LoadedClassifier:
    """The encoder's classifier with the router's default settings."""
    return load_classifier(
        ClassifierSettings(
            encoder=encoder,  # type: ignore[arg-type]
            model_path=args.artifact_dir / MODEL_FILE,
            static_dir=args.artifact_dir / STATIC_SUBDIR,
        )
    )


def measure_encoder(
    args: argparse.Namespace,
    encoder: str,
    prompts: dict[int, list[str]],
    short: list[str],
    rules: RuleSet,
) -> dict[str, Any]:
    """Latency per length, throughput per concurrency and the full-load figures of one encoder."""
    classifier = load_encoder(args, encoder)
    result: dict[str, Any] = {"p50_ms": {}, "p99_ms": {}, "max_ms": {}}
    # CPU time of the decision's own work (rules + one prompt's scoring, no event loop): what a
    # decision costs when it has a core, whatever else the machine runs.
    batch = classifier.score_batch
    result["cpu_p50_ms"], result["cpu_p99_ms"] = {}, {}
    for n in args.lengths:

        def decide(text: str) -> object:
            rules.evaluate(text)
            return batch([text])

        _, cpu = time_sync(decide, prompts[n], args.runs)
        result["cpu_p50_ms"][str(n)] = round(float(np.percentile(cpu, 50)), 4)
        result["cpu_p99_ms"][str(n)] = round(float(np.percentile(cpu, 99)), 4)

    async def run() -> None:
        await classifier.score("warm-up")
        for n in args.lengths:
            stats = percentiles(await time_async(classifier, rules, prompts[n], args.runs))
            for key in ("p50", "p99", "max"):
                result[f"{key}_ms"][str(n)] = round(stats[key], 4)
        result["decisions_per_s"] = {
            str(c): round(await throughput(classifier, rules, short, c), 1) for c in CONCURRENCY
        }
        result["full_load"] = await full_load(
            classifier, short, args.load_callers, args.load_seconds
        )

    try:
        asyncio.run(run())
    finally:
        classifier.close()
    return result


def report(encoder: str, result: dict[str, Any], lengths: Sequence[int]) -> None:
    """One encoder's figures, printed."""
    print(f"\nencoder {encoder} (router defaults, async score):")
    for n in lengths:
        print(
            f"  {n:>5} tokens: p50 {result['p50_ms'][str(n)]:.3f} ms, "
            f"p99 {result['p99_ms'][str(n)]:.3f} ms, max {result['max_ms'][str(n)]:.2f} ms"
        )
    cpu = ", ".join(
        f"{n}: {result['cpu_p50_ms'][str(n)]:.3f}/{result['cpu_p99_ms'][str(n)]:.3f}"
        for n in lengths
    )
    print(f"  CPU ms per decision p50/p99 by prompt tokens: {cpu}")
    rates = ", ".join(f"{c} callers {v:,.0f}/s" for c, v in result["decisions_per_s"].items())
    print(f"  throughput ({THROUGHPUT_TOKENS}-token prompts): {rates}")
    load = result["full_load"]
    print(
        f"  full load (policy, 8 ms budget): p50 {load['p50_ms']:.3f} ms, p99 "
        f"{load['p99_ms']:.3f} ms, max {load['max_ms']:.2f} ms, {load['decisions_per_s']:,.0f} "
        f"decisions/s, {load['budget_fallbacks']} of {load['decisions']} fell back on the budget",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print tables (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact-dir", type=Path, default=default_artifact_dir())
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument(
        "--json", type=Path, default=None, help="write the figures (see the module docstring)"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument(
        "--encoders", nargs="+", choices=("static", "minilm"), default=["static", "minilm"]
    )
    parser.add_argument("--no-grid", action="store_true", help="skip MiniLM's model x threads")
    parser.add_argument("--load-callers", type=int, default=64)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    # Prompt lengths are counted in MiniLM's WordPiece tokens (the static encoder's tokenizer is
    # the same vocabulary, pruned), so both encoders see the same texts.
    tokenizer_path = args.artifact_dir / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        tokenizer_path = args.artifact_dir / STATIC_SUBDIR / TOKENIZER_FILE
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    prompts = {n: corpus_prompts(tokenizer, n, 50) for n in args.lengths}
    short = corpus_prompts(tokenizer, THROUGHPUT_TOKENS, 200)
    rules = RuleSet(RulesSettings())
    print(f"# router decision benchmark ({os.cpu_count()} CPUs, {args.runs} runs per cell)\n")
    if "minilm" in args.encoders and not args.no_grid:
        grid(args, prompts, rules)
    encoders = {}
    for encoder in args.encoders:
        encoders[encoder] = measure_encoder(args, encoder, prompts, short, rules)
        report(encoder, encoders[encoder], args.lengths)
    print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json is not None:
        default = encoders[args.encoders[0]]
        result = {**default, "encoder": args.encoders[0], "encoders": encoders}
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
