"""The serving classifier's plumbing with a scripted session: batching, pool, errors, settings.

The real ONNX model is exercised in tests/integration/classifier; here a fake session makes
timing and failures controllable.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from router_svc.classifier import ClassifierSettings, OnnxClassifier
from tierroute.classifier_artifact import (
    CARD_FILE,
    ClassifierCard,
    FloatArray,
    PromptEncoder,
    Truncation,
    default_artifact_dir,
    read_card,
)
from tierroute.errors import OverloadedError, UnavailableError


class FakeSession:
    """Stands in for ``onnxruntime.InferenceSession``: probability = f(token ids)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.run_sizes: list[int] = []
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def run(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[FloatArray]:
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("session exploded")
        ids = feeds["input_ids"] * feeds["attention_mask"]
        self.run_sizes.append(ids.shape[0])
        return [expected(ids)]


def expected(ids: np.ndarray[Any, Any]) -> FloatArray:
    return np.asarray((ids.sum(axis=1) % 997) / 997.0, dtype=np.float32)


class RecordingClassifier(OnnxClassifier):
    """Records the size of every micro-batch handed to the pool."""

    batches: list[int]

    def score_batch(self, texts: Sequence[str]) -> FloatArray:
        self.batches.append(len(texts))
        return super().score_batch(texts)


def make(
    tokenizer_path: Path, session: FakeSession, **settings: Any
) -> tuple[RecordingClassifier, PromptEncoder]:
    encoder = PromptEncoder.from_file(tokenizer_path, Truncation(64, 16))
    card = ClassifierCard(threshold=0.7, truncation=encoder.truncation, raw={})
    classifier = RecordingClassifier(session, encoder, card, ClassifierSettings(**settings))
    classifier.batches = []
    return classifier, encoder


def truth(encoder: PromptEncoder, text: str) -> float:
    ids, mask = encoder.encode([text])
    return float(expected(ids * mask)[0])


async def test_single_score_and_threshold(tokenizer_path: Path) -> None:
    classifier, encoder = make(tokenizer_path, FakeSession())
    try:
        assert await classifier.score("What is an atom?") == pytest.approx(
            truth(encoder, "What is an atom?")
        )
        assert classifier.default_threshold == 0.7
    finally:
        classifier.close()


async def test_concurrent_calls_are_micro_batched(tokenizer_path: Path) -> None:
    session = FakeSession(delay=0.005)
    classifier, encoder = make(tokenizer_path, session, workers=1, max_batch=8)
    texts = [f"question number {i} about topic {i * 7}" for i in range(40)]
    try:
        results = await asyncio.gather(*(classifier.score(t) for t in texts))
    finally:
        classifier.close()
    assert results == pytest.approx([truth(encoder, t) for t in texts])
    assert sum(classifier.batches) == 40
    assert max(classifier.batches) == 8  # queued calls left together, capped at max_batch
    assert len(classifier.batches) <= 10
    assert set(session.run_sizes) == {1}  # "rows" mode: one session run per prompt


async def test_padded_mode_runs_groups_of_similar_length(tokenizer_path: Path) -> None:
    session = FakeSession(delay=0.005)
    classifier, encoder = make(
        tokenizer_path, session, workers=1, max_batch=16, batch_mode="padded"
    )
    texts = ["hi there", "hello you", "ok then", "a " * 300]
    texts += [f"short {i}" for i in range(8)]
    try:
        results = await asyncio.gather(*(classifier.score(t) for t in texts))
    finally:
        classifier.close()
    assert results == pytest.approx([truth(encoder, t) for t in texts], abs=1e-6)
    assert max(session.run_sizes) > 1
    # The 64-token prompt never shares a run with the 3-to-5-token ones.
    assert 1 in session.run_sizes


async def test_event_loop_keeps_running_during_inference(tokenizer_path: Path) -> None:
    session = FakeSession(delay=0.3)
    classifier, _ = make(tokenizer_path, session)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        await classifier.score("slow one")
    finally:
        task.cancel()
        classifier.close()
    gaps = np.diff(ticks)
    assert len(ticks) >= 10 and gaps.max() < 0.1
    assert all(name.startswith("classifier") for name in session.threads)


async def test_cancelled_caller_does_not_disturb_others(tokenizer_path: Path) -> None:
    session = FakeSession()
    session.release.clear()  # hold the first run so later calls queue
    classifier, encoder = make(tokenizer_path, session, workers=1)
    try:
        first = asyncio.create_task(classifier.score("first"))
        await asyncio.sleep(0.05)
        doomed = asyncio.create_task(classifier.score("doomed"))
        survivor = asyncio.create_task(classifier.score("survivor"))
        await asyncio.sleep(0.01)
        doomed.cancel()
        session.release.set()
        assert await first == pytest.approx(truth(encoder, "first"))
        assert await survivor == pytest.approx(truth(encoder, "survivor"))
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        classifier.close()
    assert classifier.batches == [1, 1]  # the cancelled call never ran


async def test_full_queue_refuses_with_overloaded(tokenizer_path: Path) -> None:
    session = FakeSession()
    session.release.clear()
    classifier, _ = make(tokenizer_path, session, workers=1, max_pending=2)
    try:
        running = [asyncio.create_task(classifier.score(f"q{i}")) for i in range(3)]
        await asyncio.sleep(0.05)  # one in flight, two queued
        with pytest.raises(OverloadedError):
            await classifier.score("one too many")
        session.release.set()
        assert len(await asyncio.gather(*running)) == 3
    finally:
        classifier.close()


async def test_session_errors_reach_every_caller_of_the_batch(tokenizer_path: Path) -> None:
    classifier, _ = make(tokenizer_path, FakeSession(fail=True))
    try:
        results = await asyncio.gather(
            *(classifier.score(f"q{i}") for i in range(3)), return_exceptions=True
        )
    finally:
        classifier.close()
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_closed_classifier_is_unavailable(tokenizer_path: Path) -> None:
    session = FakeSession()
    session.release.clear()
    classifier, _ = make(tokenizer_path, session, workers=1)
    running = asyncio.create_task(classifier.score("in flight"))
    queued = asyncio.create_task(classifier.score("queued"))
    await asyncio.sleep(0.05)
    session.release.set()
    classifier.close()
    with pytest.raises(UnavailableError):
        await queued
    await asyncio.wait_for(running, 1)  # the run in flight still completes
    with pytest.raises(UnavailableError):
        await classifier.score("after close")


async def test_batch_window_gathers_calls_that_arrive_close_together(
    tokenizer_path: Path,
) -> None:
    classifier, _ = make(tokenizer_path, FakeSession(), batch_window_ms=50)
    try:

        async def later(text: str, delay: float) -> float:
            await asyncio.sleep(delay)
            return await classifier.score(text)

        await asyncio.gather(later("a", 0), later("b", 0.01), later("c", 0.02))
    finally:
        classifier.close()
    assert classifier.batches == [3]


async def test_batch_window_bounds_the_wait_of_a_lone_call(tokenizer_path: Path) -> None:
    """Nobody else arrives: the call runs once the window ends, not later (bounded wait)."""
    classifier, _ = make(tokenizer_path, FakeSession(), batch_window_ms=30)
    try:
        started = time.perf_counter()
        await classifier.score("alone")
        waited = time.perf_counter() - started
    finally:
        classifier.close()
    assert classifier.batches == [1]
    assert 0.03 <= waited < 0.5  # the window, plus scheduling slack on a shared machine


async def test_padded_batch_shares_one_session_run(tokenizer_path: Path) -> None:
    session = FakeSession()
    classifier, encoder = make(
        tokenizer_path, session, batch_window_ms=50, batch_mode="padded", max_batch=16
    )
    texts = [f"what is {i} plus {i}" for i in range(6)]  # similar lengths: one group
    try:
        scores = await asyncio.gather(*(classifier.score(t) for t in texts))
    finally:
        classifier.close()
    assert classifier.batches == [6]
    assert session.run_sizes == [6]  # one padded run for all six concurrent decisions
    assert scores == pytest.approx([truth(encoder, t) for t in texts])


def write_card(directory: Path, **overrides: Any) -> Path:
    card: dict[str, Any] = {
        "model": {"max_tokens": 48, "head_tokens": 8},
        "calibration": {"threshold": 0.61},
    }
    card.update(overrides)
    path = directory / CARD_FILE
    path.write_text(json.dumps(card))
    return path


def test_card_is_read_and_validated(tmp_path: Path) -> None:
    card = read_card(write_card(tmp_path))
    assert card.threshold == 0.61 and card.truncation == Truncation(48, 8)
    with pytest.raises(ValueError, match="not a classifier card"):
        read_card(write_card(tmp_path, calibration={}))


def test_load_names_the_missing_file_and_the_fix(tmp_path: Path) -> None:
    settings = ClassifierSettings(model_path=tmp_path / "router.int8.onnx")
    with pytest.raises(FileNotFoundError, match="tierroute classifier build"):
        OnnxClassifier.load(settings)


def test_default_paths_follow_the_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERROUTE_CACHE_DIR", str(tmp_path))
    settings = ClassifierSettings()
    assert settings.resolved_model_path() == tmp_path / "classifier" / "router.int8.onnx"
    assert settings.resolved_tokenizer_path() == tmp_path / "classifier" / "tokenizer.json"
    assert default_artifact_dir() == tmp_path / "classifier"


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        ClassifierSettings(max_tokens=32, head_tokens=31)
    with pytest.raises(ValidationError):
        ClassifierSettings(threads=0)
    with pytest.raises(ValidationError):
        ClassifierSettings(batch_mode="fast")  # type: ignore[arg-type]
