"""Replay the stream through the learned start tier: wasted cheaper-tier calls avoided, quality.

The baseline is the cascade as it runs today: every request starts on the cheaper tier and the
escalation policy (``static``: the confidence threshold; ``controller``: the router's quality
loop, both replayed by :mod:`.loop_replay` on the recorded answers) decides whether it moves to
the largest tier. A *wasted call* is a request that started cheap and escalated. The learned
start tier (:class:`router_svc.start_tier.StartTierLearner`, the router's own code) then sees
the same stream in order: where it starts a request on the largest tier, the largest tier's
recorded answer is served and nothing is learned; where it starts cheap (its choice or the
exploration share), the baseline's outcome happens and is learned from.

Limits: the escalation labels are the policy's on the full stream (a live controller would
see fewer cheap answers to judge once the start tier skips some); latencies are the pinned
arms' recorded ones (the cascade's is the cheaper call's plus the largest tier's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_svc.classifier import ClassifierSettings, load_static_embedding
from router_svc.start_tier import (
    CheapFeatures,
    Featurizer,
    StartTierLearner,
    StartTierSettings,
    TierPrice,
    WithEmbedding,
)
from tierroute_tools.evaluation.loop_replay import (
    CHEAP,
    LARGE,
    Item,
    Outcome,
    Prices,
    _settings,
    read_items,
    replay_controller,
    replay_static,
)


@dataclass(frozen=True)
class Step:
    """One item under the learned start tier."""

    skipped: bool
    explored: bool
    wasted: bool
    """Started cheap and escalated."""
    correct: bool
    cost: float
    latency: float | None
    p_escalate: float


def simulate(
    items: Sequence[Item],
    baseline: Sequence[Outcome],
    prices: Prices,
    settings: StartTierSettings,
    latencies: dict[str, tuple[float, float]],
    seed: int,
    featurizer: Featurizer | None = None,
) -> list[Step]:
    """The learned start tier over the stream (decide, then learn from what happened);
    ``featurizer``: cheap features by default."""
    learner = StartTierLearner(
        (CHEAP, LARGE),
        [TierPrice(*prices.cheap), TierPrice(*prices.large)],
        settings,
        featurizer or CheapFeatures(settings.hash_buckets),
        rng=random.Random(seed),
        background=False,
    )
    steps = []
    for item, base in zip(items, baseline, strict=True):
        choice = learner.choose(item.prompt, None)
        small_s, large_s = latencies.get(item.id, (float("nan"), float("nan")))
        if choice.index == 1:
            steps.append(
                Step(
                    True,
                    False,
                    False,
                    item.large_correct,
                    prices.cost(LARGE, item.large_tokens),
                    large_s,
                    choice.p_escalate[0],
                )
            )
            continue
        learner.observe(
            item.prompt,
            None,
            (CHEAP, LARGE) if base.escalated else (CHEAP,),
            {CHEAP} if base.escalated else set(),
        )
        latency = small_s + large_s if base.escalated else small_s
        steps.append(
            Step(
                False,
                choice.explored,
                base.escalated,
                base.correct,
                base.served_cost,
                latency,
                choice.p_escalate[0],
            )
        )
    learner.close()
    return steps


def summarise(
    items: Sequence[Item],
    baseline: Sequence[Outcome],
    steps: Sequence[Step],
    warmup: int,
    window: int,
    latencies: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """Avoided share, quality and cost against the baseline: after warm-up, per window."""

    def block(lo: int, hi: int) -> dict[str, Any]:
        base, mine = baseline[lo:hi], steps[lo:hi]
        wasted_base = sum(o.escalated for o in base)
        wasted = sum(s.wasted for s in mine)
        # TTFT of the requests the baseline escalates (buffered cascade: both calls in series).
        up = [i for i, o in zip(items[lo:hi], base, strict=True) if o.escalated]
        base_lat = [sum(latencies[i.id]) for i in up if i.id in latencies]
        mine_lat = [
            s.latency
            for i, o, s in zip(items[lo:hi], base, mine, strict=True)
            if o.escalated and s.latency is not None
        ]
        return {
            "items": hi - lo,
            "wasted_baseline": wasted_base,
            "wasted_learned": wasted,
            "avoided_share": (1 - wasted / wasted_base) if wasted_base else None,
            "skipped": sum(s.skipped for s in mine),
            "skipped_needlessly": sum(
                s.skipped and not o.escalated for s, o in zip(mine, base, strict=True)
            ),
            "explored": sum(s.explored for s in mine),
            "quality_baseline": sum(o.correct for o in base) / (hi - lo),
            "quality_learned": sum(s.correct for s in mine) / (hi - lo),
            "cost_ratio": sum(s.cost for s in mine) / sum(o.served_cost for o in base),
            "escalated_p50_latency_baseline": statistics.median(base_lat) if base_lat else None,
            "escalated_p50_latency_learned": statistics.median(mine_lat) if mine_lat else None,
        }

    n = len(items)
    return {
        "all": block(0, n),
        "after_warmup": block(min(warmup, n), n) if warmup < n else None,
        "windows": [block(lo, min(lo + window, n)) for lo in range(0, n, window)],
    }


def _latencies(path: Path | None, small_arm: str, large_arm: str) -> dict[str, tuple[float, float]]:
    """Per item, the pinned arms' recorded latencies (seconds)."""
    if path is None:
        return {}
    arms: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        arm = json.loads(line)
        arms[arm["arm"]] = {
            r["item_id"]: float(r["latency_seconds"])
            for r in arm["records"]
            if r.get("latency_seconds") is not None
        }
    small, large = arms.get(small_arm, {}), arms.get(large_arm, {})
    return {i: (small[i], large[i]) for i in small.keys() & large.keys()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tierroute_tools.evaluation.start_tier_replay``: print and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, required=True, help="task JSONL (the order)")
    parser.add_argument("--cheap", type=Path, required=True, help="signal-study records.jsonl")
    parser.add_argument("--cheap-tier", required=True, help="tier name in those records")
    parser.add_argument("--large", type=Path, required=True, help="stream.partial.jsonl")
    parser.add_argument("--large-arm", required=True, help="pinned arm of the largest tier")
    parser.add_argument("--latency-small-arm", help="pinned arm of the cheaper tier (latency)")
    parser.add_argument("--latency", type=Path, help="stream.partial.jsonl with both pinned arms")
    parser.add_argument("--cheap-price", required=True, help="IN,OUT USD per 1M tokens")
    parser.add_argument("--large-price", required=True, help="IN,OUT USD per 1M tokens")
    parser.add_argument("--policy", choices=("static", "controller"), action="append")
    parser.add_argument("--static-threshold", type=float, required=True)
    parser.add_argument("--quality", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--start-tier", action="append", default=[], help="KEY=VALUE")
    parser.add_argument(
        "--embedding", action="store_true", help="add the static encoder's prompt embedding"
    )
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    items = read_items(args.cheap, args.cheap_tier, args.large, args.large_arm, args.tasks)
    cheap = tuple(float(x) for x in args.cheap_price.split(","))
    large = tuple(float(x) for x in args.large_price.split(","))
    prices = Prices((cheap[0], cheap[1]), (large[0], large[1]))
    values: dict[str, object] = {"enabled": True}
    values.update(dict(pair.partition("=")[::2] for pair in args.start_tier))
    settings = StartTierSettings.model_validate(values)
    latencies = _latencies(args.latency, args.latency_small_arm or CHEAP, args.large_arm)
    featurizer: Featurizer = CheapFeatures(settings.hash_buckets)
    if args.embedding:
        embedding = load_static_embedding(ClassifierSettings())
        featurizer = WithEmbedding(featurizer, embedding.embed, embedding.dimensions, "static")
    report: dict[str, Any] = {
        "items": len(items),
        "warmup": args.warmup,
        "start_tier": settings.model_dump(mode="json"),
        "features": featurizer.signature,
        "policies": {},
    }
    for policy in args.policy or ["static", "controller"]:
        if policy == "static":
            baseline = asyncio.run(replay_static(items, prices, args.static_threshold))
        else:
            baseline = asyncio.run(
                replay_controller(
                    items, prices, _settings(args.quality), args.static_threshold, args.seed
                )
            )
        steps = simulate(items, baseline, prices, settings, latencies, args.seed, featurizer)
        summary = summarise(items, baseline, steps, args.warmup, args.window, latencies)
        report["policies"][policy] = summary
        after = summary["after_warmup"] or summary["all"]
        print(
            f"{policy:10s} wasted {after['wasted_baseline']} -> {after['wasted_learned']}"
            f" (avoided {after['avoided_share']}) quality {after['quality_baseline']:.3f}"
            f" -> {after['quality_learned']:.3f} cost x{after['cost_ratio']:.3f}"
            f" skipped {after['skipped']} (needlessly {after['skipped_needlessly']})"
            " windows "
            + " ".join(
                "-" if w["avoided_share"] is None else f"{w['avoided_share']:.2f}"
                for w in summary["windows"]
            )
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
