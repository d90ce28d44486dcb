"""The signal study: task reading, job planning and resuming, one generation, and the report."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tierroute.v1 import common_pb2, model_service_pb2
from tierroute_tools.evaluation import signal_report
from tierroute_tools.evaluation.signal_study import (
    Job,
    Judge,
    StudyItem,
    done_keys,
    generate,
    plan,
    read_tasks,
)


def _item(index: int, kind: str = "number") -> StudyItem:
    return StudyItem(f"q{index}", f"What is {index} plus {index}?", str(2 * index), kind, "t")


def test_read_tasks_keeps_code_items(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    rows = [
        {"id": "a", "prompt": "What is 2 plus 2?", "answer": "4", "kind": "number", "source": "s"},
        {"id": "HumanEval/0", "prompt": "```python\n```", "answer": "", "kind": "code"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    items = read_tasks(path)
    assert [(i.id, i.kind, i.source) for i in items] == [
        ("a", "number", "s"),
        ("HumanEval/0", "code", ""),
    ]
    assert len(read_tasks(path, limit=1)) == 1


def test_plan_greedy_then_samples_and_skips_done() -> None:
    items = [_item(1), _item(2)]
    jobs = plan(items, ["small", "large"], ["small"], 2, 0.7, {("q1", "small", 0)})
    assert [(j.item.id, j.sample, j.temperature) for j in jobs["small"]] == [
        ("q2", 0, 0.0),
        ("q1", 1, 0.7),
        ("q2", 1, 0.7),
        ("q1", 2, 0.7),
        ("q2", 2, 0.7),
    ]
    assert [(j.item.id, j.sample) for j in jobs["large"]] == [("q1", 0), ("q2", 0)]


def test_done_keys_retries_errors(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    assert done_keys(path) == set()
    path.write_text(
        json.dumps({"id": "a", "tier": "small", "sample": 0, "error": None})
        + "\n"
        + json.dumps({"id": "b", "tier": "small", "sample": 0, "error": "deadline"})
        + "\n"
    )
    assert done_keys(path) == {("a", "small", 0)}


class _Stub:
    """A ModelService stub streaming two deltas and Finished; keeps the request."""

    def __init__(self) -> None:
        self.request: Any = None

    def Generate(self, request: Any, timeout: float) -> AsyncIterator[Any]:
        self.request = request
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        yield model_service_pb2.GenerateResponse(
            delta=common_pb2.TokenDelta(text="2 + 2 = ", token_ids=[1, 2], logprobs=[-0.1, -0.2])
        )
        yield model_service_pb2.GenerateResponse(
            delta=common_pb2.TokenDelta(text="4", token_ids=[3], logprobs=[-1.5])
        )
        yield model_service_pb2.GenerateResponse(
            finished=model_service_pb2.Finished(
                finish_reason=common_pb2.FINISH_REASON_STOP,
                usage=common_pb2.Usage(prompt_tokens=9, completion_tokens=3),
                confidence=common_pb2.Confidence(score=0.4, mean_logprob=-0.6, token_count=3),
            )
        )


async def test_generate_sends_a_chat_turn_and_keeps_pieces() -> None:
    stub = _Stub()
    job = Job(_item(2), "small", 1, 0.7)
    row = await generate(stub, job, max_tokens=64, timeout=5.0, seed=10)
    chat = stub.request.prompt.chat.messages
    assert [(m.role, m.content) for m in chat] == [(common_pb2.ROLE_USER, "What is 2 plus 2?")]
    assert stub.request.sampling.max_tokens == 64
    assert stub.request.sampling.temperature == pytest.approx(0.7)
    assert stub.request.sampling.seed == 11
    assert row["text"] == "2 + 2 = 4"
    assert row["pieces"] == [
        ("2 + 2 = ", [pytest.approx(-0.1), pytest.approx(-0.2)]),
        ("4", [-1.5]),
    ]
    assert row["confidence"] == pytest.approx(0.4)
    assert row["completion_tokens"] == 3
    assert row["finish_reason"] == "FINISH_REASON_STOP"


async def test_greedy_request_sets_no_seed() -> None:
    stub = _Stub()
    await generate(stub, Job(_item(2), "large", 0, 0.0), max_tokens=8, timeout=5.0, seed=10)
    assert not stub.request.sampling.HasField("seed")
    assert stub.request.sampling.temperature == 0.0


async def test_judge_scores_numbers() -> None:
    judge = Judge()
    try:
        assert await judge.score(_item(2), "2 + 2 = 4") == (True, "4")
        assert await judge.score(_item(2), "It is 5.") == (False, "5")
    finally:
        judge.close()


def _row(item: int, tier: str, sample: int, right: bool, rng: random.Random) -> dict[str, Any]:
    """A synthetic answer whose final number is sure when right and unsure when wrong."""
    result_lp = -0.05 if right else -2.0 - rng.random()
    work = [-rng.random() * 0.5 for _ in range(4)]
    pieces = [("Working it out = ", work), (str(item if right else item + 1), [result_lp])]
    return {
        "id": f"q{item:03d}",
        "tier": tier,
        "sample": sample,
        "kind": "number",
        "source": "t",
        "prompt": f"What is {item}?",
        "text": "".join(t for t, _ in pieces),
        "pieces": pieces,
        "confidence": rng.random(),
        "completion_tokens": 5,
        "correct": right,
        "error": None,
    }


def test_report_ranks_a_span_signal_and_writes_outputs(tmp_path: Path) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(80):
        right = i % 3 != 0
        rows.append(_row(i, "small", 0, right, rng))
        rows.append(_row(i, "small", 1, right, rng))  # samples agree with the main answer
        rows.append(_row(i, "large", 0, bool(i % 5), rng))
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = signal_report.write_report(records, tmp_path, seed=3)
    small = report["tiers"]["small"]
    assert small["items"] == 80
    assert small["fit_items"] + small["report_items"] == 80
    assert small["sample_tokens"] == 80 * 5
    assert small["auroc"]["span_mean_logprob"]["all"] == 1.0
    assert small["auroc"]["learned"]["all"] >= 0.9
    assert report["auroc"]["small"]["self_consistency"] is not None
    assert "learned+self_consistency" not in report["tiers"]["large"]["auroc"]
    assert (tmp_path / "roc-small.png").stat().st_size > 0
    assert (tmp_path / "roc-large.png").stat().st_size > 0
    table = (tmp_path / "signals.md").read_text()
    assert "| span_mean_logprob | 1.000" in table
    assert json.loads((tmp_path / "signals.json").read_text())["seed"] == 3
