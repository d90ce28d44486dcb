"""How often a judge's verdict on a cheaper tier's answer agrees with the gold score.

The quality loop never sees gold answers: it trusts a judge. This study measures that trust on
recorded answers (the signal study's ``records.jsonl``: every tier's greedy answer to every item
of a task file, each scored against gold). For each item the cheaper tier's answer is the
candidate and the largest tier's answer is the reference, exactly as the router judges a
shadowed or escalated request, and the verdict is compared with whether the candidate was right.

Judges: ``agreement`` and ``code`` run here; ``llm`` asks a running model service (the largest
tier: ``--model-address``, or the ``pair`` preset's largest tier started for the run) the
judge's yes/no question, one greedy token, exactly as :mod:`router_svc.judge_ask` does.

Reports per judge: decided share, agreement with gold overall and where the reference was
right, the confusion counts, the AUROC of the judge's score against gold (the ``llm`` judge's
P(yes) ranks), and what the questions cost in tokens. JSON and a Markdown table.

Run: ``python -m tierroute_tools.evaluation.judge_study --records .cache/signal_study/records.jsonl
--cheap-tier small --large-tier large --judge agreement --judge llm --out .cache/judge_study``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tierroute.judges import JudgeCase, JudgeSettings, build_judges
from tierroute.judges.base import Judge
from tierroute.judges.llm import AskResult, LlmJudge
from tierroute.routing_metrics import safe_auroc
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

LOCAL_JUDGES = ("agreement", "code")


@dataclass(frozen=True)
class Pair:
    """One item: the cheaper tier's answer (candidate), the largest tier's (reference)."""

    id: str
    prompt: str
    candidate: str
    candidate_correct: bool
    reference: str
    reference_correct: bool


def read_pairs(records: Path, cheap_tier: str, large_tier: str) -> list[Pair]:
    """Items answered without error by both tiers (greedy sample 0), in file order."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    order: list[str] = []
    for line in records.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("sample") != 0 or row.get("error") is not None:
            continue
        if row["id"] not in rows:
            order.append(row["id"])
        rows.setdefault(row["id"], {})[row["tier"]] = row
    pairs = []
    for item_id in order:
        tiers = rows[item_id]
        if cheap_tier in tiers and large_tier in tiers:
            c, g = tiers[cheap_tier], tiers[large_tier]
            pairs.append(
                Pair(item_id, c["prompt"], c["text"], bool(c["correct"]), g["text"], g["correct"])
            )
    return pairs


def stub_ask(address: str, timeout: float) -> tuple[Any, grpc.aio.Channel, list[int]]:
    """An :data:`~tierroute.judges.llm.Ask` over a model service, and its token counter."""
    channel = grpc.aio.insecure_channel(address)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
    tokens = [0, 0]

    async def ask(question: str) -> AskResult:
        message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)
        request = model_service_pb2.GenerateRequest(
            prompt=common_pb2.Prompt(chat=common_pb2.Chat(messages=[message])),
            sampling=common_pb2.SamplingParams(max_tokens=1, temperature=0.0),
            request_id=f"judge-study-{time.monotonic_ns()}",
        )
        token, logprob = "", None
        async for event in stub.Generate(request, timeout=timeout):
            if event.HasField("delta"):
                token += event.delta.text
                if logprob is None and event.delta.logprobs:
                    logprob = float(event.delta.logprobs[0])
            elif event.HasField("finished"):
                tokens[0] += event.finished.usage.prompt_tokens
                tokens[1] += event.finished.usage.completion_tokens
        return AskResult(token=token, logprob=logprob)

    return ask, channel, tokens


async def judge_all(name: str, judge: Judge, pairs: Sequence[Pair]) -> dict[str, Any]:
    """Every pair judged by ``judge``; the verdicts compared with gold."""
    started = time.monotonic()
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    undecided = 0
    right_ref = [0, 0]  # agreeing verdicts, decided pairs, where the reference is right
    scores: list[float] = []
    golds: list[bool] = []
    for i, pair in enumerate(pairs, 1):
        case = JudgeCase(prompt=pair.prompt, candidate=pair.candidate, reference=pair.reference)
        verdict = await judge.judge(case)
        if not verdict.decided:
            undecided += 1
        else:
            key = ("t" if verdict.acceptable == pair.candidate_correct else "f") + (
                "p" if verdict.acceptable else "n"
            )
            counts[key] += 1
            scores.append(verdict.score)
            golds.append(pair.candidate_correct)
            if pair.reference_correct:
                right_ref[1] += 1
                right_ref[0] += verdict.acceptable == pair.candidate_correct
        if i % 25 == 0 or i == len(pairs):
            rate = i / max(1e-9, time.monotonic() - started)
            print(f"  {name}: {i}/{len(pairs)} judged ({rate:.1f}/s)", flush=True)
    decided = len(pairs) - undecided
    agree = counts["tp"] + counts["tn"]
    return {
        "items": len(pairs),
        "decided": decided,
        "agreement": agree / decided if decided else None,
        "agreement_reference_right": right_ref[0] / right_ref[1] if right_ref[1] else None,
        "auroc": safe_auroc(scores, golds),
        "counts": counts,
        "seconds": round(time.monotonic() - started, 1),
    }


def markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The results as a Markdown table."""

    def fmt(x: Any) -> str:
        return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    lines = [
        "| judge | items | decided | agreement with gold | where the reference is right "
        "| AUROC of its score | acceptable right / acceptable wrong / rejected right "
        "/ rejected wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        c = r["counts"]
        lines.append(
            f"| `{name}` | {r['items']} | {r['decided']} | {fmt(r['agreement'])} | "
            f"{fmt(r['agreement_reference_right'])} | {fmt(r['auroc'])} | "
            f"{c['tp']} / {c['fp']} / {c['fn']} / {c['tn']} |"
        )
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, address: str | None) -> dict[str, Any]:
    """Every requested judge over the recorded pairs."""
    pairs = read_pairs(args.records, args.cheap_tier, args.large_tier)[: args.limit]
    print(f"{len(pairs)} answer pairs ({args.cheap_tier} judged against {args.large_tier})")
    local = build_judges(JudgeSettings(default="code", fallbacks={"code": "agreement"}))
    agreement = build_judges(JudgeSettings(default="agreement", fallbacks={})).select()
    results: dict[str, Any] = {}
    for name in args.judge:
        if name == "llm":
            if address is None:
                raise SystemExit("the llm judge needs a model service (--model-address)")
            ask, channel, tokens = stub_ask(address, args.timeout)
            try:
                results[name] = await judge_all(name, LlmJudge(ask), pairs)
            finally:
                await channel.close()
            results[name]["question_tokens"] = {"prompt": tokens[0], "completion": tokens[1]}
        elif name == "code":
            results[name] = await judge_all("code (else agreement)", local.select(), pairs)
        else:
            results[name] = await judge_all(name, agreement, pairs)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, required=True, help="signal-study records")
    parser.add_argument("--cheap-tier", required=True)
    parser.add_argument("--large-tier", required=True)
    parser.add_argument("--judge", action="append", choices=("agreement", "code", "llm"))
    parser.add_argument("--model-address", help="ModelService HOST:PORT of the judging tier")
    parser.add_argument("--start-large", action="store_true", help="start the pair's large tier")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.judge = args.judge or ["agreement"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.start_large and args.model_address is None:
        from tierroute_tools.evaluation.signal_study import model_services

        with model_services(["large"], {}, args.out, 900.0) as addresses:
            results = asyncio.run(run(args, addresses["large"]))
    else:
        results = asyncio.run(run(args, args.model_address))
    (args.out / "judges.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = markdown(results)
    (args.out / "judges.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
