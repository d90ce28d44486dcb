"""Replay recorded answers through the router's own quality loop, in stream order, offline.

A live stream evaluation (:mod:`.stream_run`) sends every item through a real router once per
policy, which on this CPU costs the largest tier's engine time again for every policy. When the
tiers' greedy answers are already recorded — the cheaper tier's with its streamed pieces (the
signal study's ``records.jsonl``: text and per-token log-probs), the largest tier's from a
pinned arm (``stream.partial.jsonl``) — the same decisions can be replayed exactly: greedy
answers do not change between runs, and the replay runs the router's own code for everything
that decides (:class:`router_svc.quality.QualityLoop`: sampling, learned score, Learn-then-Test
threshold; :mod:`tierroute.judges`; :func:`tierroute.answer_features.answer_features`).

What differs from the live router: items are decided one after the other (the live stream has a
few in flight), and a sampled answer is judged before the next item is decided (live, judging
lags a little). Costs are the recorded token counts at the given prices.

Policies: ``static`` (escalate when the model's confidence is below a fixed threshold) and
``controller`` (the quality loop with the router's defaults unless overridden). The gold answers
score the outcome only; the loop sees judge verdicts, never gold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_svc.quality import JudgedSample, QualityLoop
from router_svc.quality.settings import QualitySettings
from tierroute.answer_features import answer_features
from tierroute.judges import JudgeCase, JudgeSettings, build_judges

CHEAP, LARGE = "small", "large"


@dataclass(frozen=True)
class Item:
    """One item's recorded answers and their gold scores."""

    id: str
    prompt: str
    cheap_text: str
    pieces: tuple[tuple[str, tuple[float, ...]], ...]
    confidence: float
    cheap_correct: bool
    cheap_tokens: tuple[int, int]
    large_text: str
    large_correct: bool
    large_tokens: tuple[int, int]


@dataclass(frozen=True)
class Prices:
    """USD per 1M input and output tokens of the two tiers."""

    cheap: tuple[float, float]
    large: tuple[float, float]

    def cost(self, tier: str, tokens: tuple[int, int]) -> float:
        """The cost of one call on ``tier``."""
        price = self.cheap if tier == CHEAP else self.large
        return (tokens[0] * price[0] + tokens[1] * price[1]) / 1e6


def read_items(
    cheap_records: Path, cheap_tier: str, large_records: Path, large_arm: str, order: Path
) -> list[Item]:
    """Items in the task file's order, joined from the two recordings (missing ones dropped)."""
    cheap: dict[str, dict[str, Any]] = {}
    for line in cheap_records.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["tier"] == cheap_tier and row["sample"] == 0 and row.get("error") is None:
            cheap[row["id"]] = row
    large: dict[str, dict[str, Any]] = {}
    for line in large_records.read_text(encoding="utf-8").splitlines():
        arm = json.loads(line)
        if arm["arm"] == large_arm:
            large = {r["item_id"]: r for r in arm["records"] if r.get("error") is None}
    items = []
    for line in order.read_text(encoding="utf-8").splitlines():
        item_id = json.loads(line)["id"]
        if item_id not in cheap or item_id not in large:
            continue
        c, g = cheap[item_id], large[item_id]
        items.append(
            Item(
                id=item_id,
                prompt=c["prompt"],
                cheap_text=c["text"],
                pieces=tuple((text, tuple(lps)) for text, lps in c["pieces"]),
                confidence=float(c["confidence"]),
                cheap_correct=bool(c["correct"]),
                cheap_tokens=(int(c["prompt_tokens"]), int(c["completion_tokens"])),
                large_text=g["text"],
                large_correct=bool(g["correct"]),
                large_tokens=(int(g["prompt_tokens"]), int(g["completion_tokens"])),
            )
        )
    return items


@dataclass
class Outcome:
    """What happened to one item under a policy."""

    escalated: bool
    correct: bool
    served_cost: float
    measurement_cost: float
    threshold: float
    samples: int
    """Judged samples the loop held after this item."""
    judged: bool | None = None
    """The judge's verdict on the cheaper answer, when it was judged."""


async def replay_static(items: Sequence[Item], prices: Prices, threshold: float) -> list[Outcome]:
    """Escalate when the cheaper tier's confidence is below ``threshold``."""
    outcomes = []
    for item in items:
        up = item.confidence < threshold
        cost = prices.cost(CHEAP, item.cheap_tokens) + (
            prices.cost(LARGE, item.large_tokens) if up else 0.0
        )
        correct = item.large_correct if up else item.cheap_correct
        outcomes.append(Outcome(up, correct, cost, 0.0, threshold, 0))
    return outcomes


async def replay_controller(
    items: Sequence[Item],
    prices: Prices,
    settings: QualitySettings,
    fallback_threshold: float,
    seed: int = 0,
) -> list[Outcome]:
    """The quality loop deciding, sampling, judging and learning, item after item."""
    loop = await QualityLoop.open(
        settings, [CHEAP, LARGE], LARGE, fallback_threshold, rng=random.Random(seed)
    )
    # The code judge runs the prompt's examples; answers with nothing to run are compared.
    judge = build_judges(JudgeSettings(default="code", fallbacks={"code": "agreement"})).select()
    outcomes = []
    judged = 0
    for i, item in enumerate(items):
        features = dict(answer_features(item.pieces, prompt=item.prompt))
        features["confidence"] = item.confidence
        score = loop.escalation_score(CHEAP, features)
        threshold = loop.threshold(CHEAP)
        up = score < threshold
        cheap_cost = prices.cost(CHEAP, item.cheap_tokens)
        large_cost = prices.cost(LARGE, item.large_tokens)
        served_cost = cheap_cost + (large_cost if up else 0.0)
        outcome = Outcome(
            up, item.large_correct if up else item.cheap_correct, served_cost, 0.0, threshold, 0
        )
        decision = await loop.should_sample(CHEAP, up)
        if decision.sampled:
            shadow = 0.0 if up else large_cost
            case = JudgeCase(
                prompt=item.prompt, candidate=item.cheap_text, reference=item.large_text
            )
            verdict = await judge.judge(case)
            outcome.measurement_cost = shadow + verdict.cost_usd
            if verdict.decided:
                judged += 1
                outcome.judged = verdict.acceptable
                await loop.record(
                    JudgedSample(
                        request_id=item.id,
                        tenant="replay",
                        route="replay",
                        tier=CHEAP,
                        served_tier=LARGE if up else CHEAP,
                        tiers_tried=(CHEAP, LARGE) if up else (CHEAP,),
                        escalated=up,
                        score=score,
                        features=features,
                        routing_score=None,
                        judge=verdict.judge,
                        acceptable=verdict.acceptable,
                        judge_score=verdict.score,
                        sample_weight=max(1.0, decision.weight),
                        served_cost_usd=served_cost,
                        baseline_cost_usd=large_cost,
                        shadow_cost_usd=shadow,
                        judge_cost_usd=verdict.cost_usd,
                        time=float(i),
                    )
                )
            else:
                loop.record_undecided(CHEAP, verdict.judge, shadow, verdict.cost_usd)
        outcome.samples = judged
        outcomes.append(outcome)
    await loop.close()
    return outcomes


def summarise(
    items: Sequence[Item], outcomes: Sequence[Outcome], prices: Prices, window: int
) -> dict[str, Any]:
    """Quality and cost relative to all-largest, per window and overall, and random escalation
    at the same rate."""

    def block(lo: int, hi: int) -> dict[str, Any]:
        part, done = items[lo:hi], outcomes[lo:hi]
        large_q = sum(i.large_correct for i in part)
        large_cost = sum(prices.cost(LARGE, i.large_tokens) for i in part)
        cost = sum(o.served_cost + o.measurement_cost for o in done)
        rate = sum(o.escalated for o in done) / len(done)
        cheap_cost = sum(prices.cost(CHEAP, i.cheap_tokens) for i in part)
        random_q = sum((1 - rate) * i.cheap_correct + rate * i.large_correct for i in part)
        judged = [(o.judged, i.cheap_correct) for i, o in zip(part, done, strict=True)]
        judged = [(v, g) for v, g in judged if v is not None]
        return {
            "items": len(part),
            "served_quality": sum(o.correct for o in done) / len(part),
            "large_quality": large_q / len(part),
            "quality_ratio": sum(o.correct for o in done) / large_q if large_q else None,
            "cost_ratio": cost / large_cost,
            "measurement_cost_ratio": sum(o.measurement_cost for o in done) / large_cost,
            "escalation_rate": rate,
            "threshold_end": done[-1].threshold,
            "samples_end": done[-1].samples,
            "judge_agreement": (sum(v == g for v, g in judged) / len(judged) if judged else None),
            "judged": len(judged),
            "random_at_same_rate": {
                "quality_ratio": random_q / large_q if large_q else None,
                "cost_ratio": (cheap_cost + rate * large_cost) / large_cost,
            },
        }

    windows = [block(lo, min(lo + window, len(items))) for lo in range(0, len(items), window)]
    return {"overall": block(0, len(items)), "windows": windows}


def _settings(pairs: Sequence[str]) -> QualitySettings:
    values: dict[str, object] = {"enabled": True}
    for pair in pairs:
        key, _, value = pair.partition("=")
        values[key] = value
    # Validated (and coerced from text) like the router's own configuration.
    return QualitySettings.model_validate(values)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tierroute_tools.evaluation.loop_replay``: print and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, required=True, help="task JSONL (the order)")
    parser.add_argument("--cheap", type=Path, required=True, help="signal-study records.jsonl")
    parser.add_argument("--cheap-tier", required=True, help="tier name in those records")
    parser.add_argument("--large", type=Path, required=True, help="stream.partial.jsonl")
    parser.add_argument("--large-arm", required=True, help="pinned arm of the largest tier")
    parser.add_argument("--cheap-price", required=True, help="IN,OUT USD per 1M tokens")
    parser.add_argument("--large-price", required=True, help="IN,OUT USD per 1M tokens")
    parser.add_argument("--static-threshold", type=float, required=True)
    parser.add_argument("--quality", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--price-ratio", type=float, default=7.5)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    items = read_items(args.cheap, args.cheap_tier, args.large, args.large_arm, args.tasks)
    cheap = tuple(float(x) for x in args.cheap_price.split(","))
    large = tuple(float(x) for x in args.large_price.split(","))
    configured = Prices((cheap[0], cheap[1]), (large[0], large[1]))
    ratio = Prices((large[0] / args.price_ratio, large[1] / args.price_ratio), configured.large)
    report: dict[str, Any] = {"items": len(items), "prices": {}, "price_ratio": args.price_ratio}
    settings = _settings(args.quality)
    for name, prices in (("configured", configured), ("ratio", ratio)):
        static = asyncio.run(replay_static(items, prices, args.static_threshold))
        controller = asyncio.run(
            replay_controller(items, prices, settings, args.static_threshold, args.seed)
        )
        report["prices"][name] = {
            "static": summarise(items, static, prices, args.window),
            "controller": summarise(items, controller, prices, args.window),
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, block in report["prices"].items():
        for policy, summary in block.items():
            o = summary["overall"]
            print(
                f"{name:10s} {policy:10s} quality {o['quality_ratio']:.3f}"
                f" cost {o['cost_ratio']:.3f} escalated {o['escalation_rate']:.2f}"
                f" judge {o['judge_agreement']}"
                f" samples {o['samples_end']} windows "
                + " ".join(f"{w['quality_ratio']:.2f}" for w in summary["windows"])
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
