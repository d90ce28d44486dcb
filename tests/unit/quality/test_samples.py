"""Judged samples: validation, JSON round trip, and the bounded, persisted in-process store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_svc.quality.samples import InProcessSampleStore, JudgedSample, SampleFormatError
from tests.unit.quality.factory import sample


def test_json_round_trip_keeps_every_field() -> None:
    original = sample(
        served_tier="large", features={"mean_logprob": -0.4, "final_span_min": -2.5}, weight=4.0
    )
    assert JudgedSample.from_json(original.to_json()) == original
    assert JudgedSample.loads(original.dumps()) == original
    assert original.tiers_tried == ("small", "large") and original.escalated


def test_features_are_read_only() -> None:
    s = sample(features={"a": 1.0})
    with pytest.raises(TypeError):
        s.features["a"] = 2.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value"),
    [("score", 1.5), ("judge_score", -0.1), ("sample_weight", 0.5), ("shadow_cost_usd", -1.0)],
)
def test_out_of_range_values_are_rejected(field: str, value: float) -> None:
    with pytest.raises(SampleFormatError, match=field):
        overrides: dict[str, Any] = {field: value}
        sample(**overrides)


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"request_id": "x"}', json.dumps({**sample().to_json(), "score": "a"})],
)
def test_malformed_lines_raise_format_errors(line: str) -> None:
    with pytest.raises(SampleFormatError):
        JudgedSample.loads(line)


async def test_store_is_bounded_and_counts_per_tier() -> None:
    store = InProcessSampleStore(capacity=3)
    for i, tier in enumerate(["small", "medium", "small", "small"]):
        await store.add(sample(tier=tier, request_id=f"r{i}"))
    assert await store.count() == 3
    assert await store.count("small") == 2  # r0 was the oldest and was dropped
    assert await store.count("medium") == 1
    assert [s.request_id for s in await store.recent(10)] == ["r1", "r2", "r3"]
    assert [s.request_id for s in await store.recent(1, tier="small")] == ["r3"]
    assert [s.request_id for s in await store.recent(5, tier="medium")] == ["r1"]
    assert await store.recent(0) == []


async def test_store_persists_on_close_and_skips_a_corrupt_line(tmp_path: Path) -> None:
    path = tmp_path / "samples" / "judged.jsonl"
    store = await InProcessSampleStore.open(10, path)
    assert await store.count() == 0  # no file yet
    await store.add(sample(request_id="a"))
    await store.add(sample(request_id="b", acceptable=False))
    await store.close()
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed away
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{torn", lines[1]]) + "\n")
    reopened = await InProcessSampleStore.open(10, path)
    assert [s.request_id for s in await reopened.recent(10)] == ["a", "b"]


async def test_reopening_with_a_smaller_capacity_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "judged.jsonl"
    store = InProcessSampleStore(10, path)
    for i in range(5):
        await store.add(sample(request_id=str(i)))
    await store.close()
    smaller = await InProcessSampleStore.open(2, path)
    assert [s.request_id for s in await smaller.recent(10)] == ["3", "4"]


_samples = st.builds(
    lambda ok, score, tier, weight, feat: sample(
        acceptable=ok, score=score, tier=tier, weight=weight, features={"f": feat}
    ),
    st.booleans(),
    st.floats(0, 1),
    st.sampled_from(["small", "medium"]),
    st.floats(1, 1000),
    st.floats(-1e6, 1e6),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(_samples, max_size=30), capacity=st.integers(1, 40))
def test_property_store_round_trip_across_close_and_reopen(
    tmp_path: Path, items: list[JudgedSample], capacity: int
) -> None:
    path = tmp_path / "roundtrip.jsonl"

    async def run() -> tuple[list[JudgedSample], list[JudgedSample], int, int]:
        store = InProcessSampleStore(capacity, path)
        for item in items:
            await store.add(item)
        await store.close()
        again = await InProcessSampleStore.open(capacity, path)
        return (
            await store.recent(capacity),
            await again.recent(capacity),
            await store.count("small"),
            await again.count("small"),
        )

    before, after, small_before, small_after = asyncio.run(run())
    assert after == before == items[-capacity:]
    assert small_after == small_before
