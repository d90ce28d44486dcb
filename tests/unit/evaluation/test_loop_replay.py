"""The offline replay of recorded answers through the router's quality loop."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from router_svc.quality.settings import QualitySettings
from tierroute_tools.evaluation.loop_replay import (
    Item,
    Outcome,
    Prices,
    main,
    replay_controller,
    replay_static,
    summarise,
)

PRICES = Prices(cheap=(0.1, 0.2), large=(1.0, 2.0))


def _item(i: int, right: bool) -> Item:
    # The final number of a right answer is sure, a wrong one's is not; the whole answer's
    # confidence says the opposite (it ranks backwards, as on chat-form arithmetic).
    sure, unsure = -0.01, -2.5
    answer = str(i + 3) if right else str(i + 4)
    pieces = (("The answer is ", (-0.2, -0.2, -0.2)), (answer, (sure if right else unsure,)))
    return Item(
        id=f"item-{i:03d}",
        prompt=f"What is {i} + 3?",
        cheap_text=f"The answer is {answer}",
        pieces=pieces,
        confidence=0.3 if right else 0.9,
        cheap_correct=right,
        cheap_tokens=(10, 4),
        large_text=f"The answer is {i + 3}",
        large_correct=True,
        large_tokens=(10, 4),
    )


def _items(n: int, seed: int = 1) -> list[Item]:
    rng = random.Random(seed)
    return [_item(i, rng.random() < 0.8) for i in range(n)]


async def test_static_escalates_below_its_threshold_on_the_models_confidence() -> None:
    items = _items(40)
    outcomes = await replay_static(items, PRICES, threshold=0.5)
    # Backwards confidence: every right answer (0.3) escalates, every wrong one (0.9) is served.
    assert [o.escalated for o in outcomes] == [i.cheap_correct for i in items]
    assert not any(o.correct for o, i in zip(outcomes, items, strict=True) if not i.cheap_correct)


async def test_the_controller_holds_quality_and_learns_to_serve_the_right_answers() -> None:
    items = _items(400)
    settings = QualitySettings(
        enabled=True, initial_rate=1.0, min_samples=30, refit_every=10, score_min_samples=10
    )
    outcomes = await replay_controller(items, PRICES, settings, fallback_threshold=0.65)
    summary = summarise(items, outcomes, PRICES, window=50)
    overall = summary["overall"]
    # Warm-up escalates everything; once certified, the wrong answers still escalate.
    assert summary["windows"][0]["escalation_rate"] == 1.0
    assert summary["windows"][-1]["escalation_rate"] < 0.5
    assert overall["quality_ratio"] >= 0.95
    assert overall["judge_agreement"] == 1.0 and overall["judged"] > 30
    assert overall["cost_ratio"] < summary["windows"][0]["cost_ratio"]


def test_summary_ratios_and_random_escalation_at_the_same_rate() -> None:
    items = [_item(0, True), _item(1, False)]
    outcomes = [
        Outcome(escalated=False, correct=True, served_cost=1.0, measurement_cost=0.5, threshold=1.0,
                samples=1),
        Outcome(escalated=True, correct=True, served_cost=3.0, measurement_cost=0.0, threshold=1.0,
                samples=1),
    ]  # fmt: skip
    large = sum(PRICES.cost("large", i.large_tokens) for i in items)
    overall = summarise(items, outcomes, PRICES, window=1)["overall"]
    assert overall["quality_ratio"] == 1.0 and overall["escalation_rate"] == 0.5
    assert overall["cost_ratio"] == pytest.approx(4.5 / large)
    # Half escalated at random: the right answer stays right, the wrong one half the time.
    assert overall["random_at_same_rate"]["quality_ratio"] == pytest.approx(0.75)


def test_the_command_joins_the_recordings_in_task_order(tmp_path: Path) -> None:
    items = _items(60)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": i.id}) + "\n" for i in reversed(items)))
    cheap = tmp_path / "records.jsonl"
    cheap.write_text(
        "".join(
            json.dumps(
                {"id": i.id, "tier": "small", "sample": 0, "error": None, "prompt": i.prompt,
                 "text": i.cheap_text, "pieces": [[t, list(lp)] for t, lp in i.pieces],
                 "confidence": i.confidence, "correct": i.cheap_correct, "prompt_tokens": 10,
                 "completion_tokens": 4}
            ) + "\n"
            for i in items
        )
    )  # fmt: skip
    large = tmp_path / "stream.partial.jsonl"
    rows = [
        {"item_id": i.id, "error": None, "text": i.large_text, "correct": True,
         "prompt_tokens": 10, "completion_tokens": 4}
        for i in items
    ]  # fmt: skip
    large.write_text(json.dumps({"arm": "large", "records": rows}) + "\n")
    out = tmp_path / "replay.json"
    argv = [
        *("--tasks", str(tasks), "--cheap", str(cheap), "--cheap-tier", "small"),
        *("--large", str(large), "--large-arm", "large", "--cheap-price", "0.1,0.2"),
        *("--large-price", "1,2", "--static-threshold", "0.5", "--json", str(out)),
        *("--quality", "initial_rate=1.0", "--window", "20"),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["items"] == 60 and set(report["prices"]) == {"configured", "ratio"}
    static = report["prices"]["configured"]["static"]
    assert len(static["windows"]) == 3
    # Items run in the task file's order (reversed here): the first window is the last 20
    # items. Right answers (confidence 0.3) escalate to the always-right large tier, wrong ones
    # (0.9) are served: the window's served quality is its share of right cheap answers.
    first = items[-20:]
    assert static["windows"][0]["served_quality"] == pytest.approx(
        sum(i.cheap_correct for i in first) / 20
    )
