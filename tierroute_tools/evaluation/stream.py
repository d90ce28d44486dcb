"""A stream through one router: items in order, a ``GetQuality`` snapshot after each window.

The stream evaluation (``tierroute eval live DATA --policy ...``) sends the items of a task file
the way callers send them: each prompt as one user message of a chat, greedy, with an answer
budget long enough to finish (a number task's answer is its final number after any working; a
code task's answer is scored by running the task's tests in the sandbox). Items flow in order,
one window at a time (``concurrency`` requests in flight inside a window); after each window
the router's ``GetQuality`` is read, so the report has the threshold in force, the judged
samples and the cumulative shadow and judge costs at every window boundary. Items must not
overlap windows: what the quality loop learned from window ``k`` shows in window ``k + 1``.

Policies (each on a router of its own, with fresh state):

- ``static``: quality loop off, the preset's shipped fallback threshold;
- ``fitted``: quality loop off, the calibration and threshold of ``tierroute eval
  fit-confidence``;
- ``controller``: quality loop on (judges: ``agreement`` by default, ``code`` on the code
  routes), starting from the static threshold; it learns from judge verdicts only;
- ``learned-start``: the controller with the learned start tier on (``start_tier``, a fresh
  model with only its prior): the router learns from the cascade's outcomes where to start, and
  skips the cheaper call it expects to be escalated.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tierroute.client import Completion, Router, RouterError
from tierroute_tools.evaluation.live import (
    CODE,
    Arm,
    ExactMatch,
    LiveItem,
    LiveRecord,
    Sampling,
    Score,
    record_of,
)
from tierroute_tools.evaluation.stream_report import windows

POLICIES: tuple[str, ...] = ("static", "fitted", "controller", "learned-start")
LOOP_POLICIES: tuple[str, ...] = ("controller", "learned-start")
"""Policies that run the quality loop."""
STREAM_MAX_TOKENS = 320
"""Answer budget of a stream request: chat answers with their working finish well within it."""
CODE_ROUTES: tuple[str, ...] = ("rule:code_fence", "rule:code_like")
"""Routing reasons of code prompts: the controller's judge there is ``code``."""
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    del message


def read_stream_items(path: Path, limit: int | None = None) -> list[LiveItem]:
    """Items of a task JSONL file in file order: ``number``/``choice`` tasks (gold answers) and
    ``code`` tasks (a HumanEval id, scored by its tests); ids must be unique."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("kind") == CODE:
                items.append(
                    LiveItem(str(row["id"]), str(row["prompt"]), "", CODE, row.get("source", ""))
                )
            else:
                items.append(LiveItem.from_json(row))
    if len({item.id for item in items}) != len(items):
        raise ValueError(f"{path}: item ids are not unique")
    return items[:limit]


class MixedScorer:
    """Exact match of the final answer for numbers and choices; the tests for code tasks."""

    def __init__(self, items: Sequence[LiveItem], sandboxes: int = 2) -> None:
        from tierroute_tools.evaluation.code_tasks import load_tasks
        from tierroute_tools.evaluation.tasks import CodeScorer

        code_ids = {item.id for item in items if item.kind == CODE}
        tasks = {t.id: t for t in load_tasks("humaneval") if t.id in code_ids} if code_ids else {}
        unknown = code_ids - set(tasks)
        if unknown:
            raise ValueError(f"no code task for {', '.join(sorted(unknown))}")
        self._exact = ExactMatch()
        self._code = CodeScorer(tasks, sandboxes)

    async def score(self, item: LiveItem, text: str) -> Score:
        """The verdict against gold (the router never sees it)."""
        if item.kind == CODE:
            return await self._code.score(item, text)
        return await self._exact.score(item, text)

    def close(self) -> None:
        """Wait for running sandboxes."""
        self._code.close()


def snapshot_of(reply: Any, configured: Mapping[str, float]) -> dict[str, Any]:
    """A ``GetQualityResponse`` as a plain mapping; without the loop, ``configured`` thresholds."""
    if not reply.enabled:
        return {
            "enabled": False,
            "samples": 0,
            "estimate": None,
            "lower_bound": None,
            "shadow_cost_usd": 0.0,
            "judge_cost_usd": 0.0,
            "thresholds": dict(configured),
            "threshold_samples": {},
            "judges": {},
        }
    return {
        "enabled": True,
        "samples": int(reply.overall.samples),
        "estimate": float(reply.overall.estimate) if reply.overall.samples else None,
        "lower_bound": float(reply.overall.lower_bound) if reply.overall.samples else None,
        "shadow_cost_usd": float(reply.shadow_cost_usd),
        "judge_cost_usd": float(reply.judge_cost_usd),
        "thresholds": {t.tier: float(t.value) for t in reply.thresholds},
        "threshold_samples": {t.tier: int(t.samples) for t in reply.thresholds},
        "judges": {
            j.judge: {"samples": int(j.samples), "acceptable": int(j.acceptable)}
            for j in reply.judges
        },
    }


async def _settle(router: Router, configured: Mapping[str, float], wait: float) -> dict[str, Any]:
    """The snapshot once shadow samples in flight have been judged: two equal readings in a
    row, or the last one after ``wait`` seconds (a shadow runs off the caller's path, so its
    cost may land after the request that caused it)."""
    deadline = time.monotonic() + wait
    last = snapshot_of(await router.get_quality(), configured)
    while last["enabled"] and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = snapshot_of(await router.get_quality(), configured)
        if now == last:
            break
        last = now
    return last


async def _one(
    router: Router,
    item: LiveItem,
    arm: Arm,
    sampling: Sampling,
    scorer: Any,
) -> LiveRecord:
    started = time.monotonic()
    completion: Completion | None = None
    try:
        completion = await router.complete(
            [("user", item.prompt)],
            max_tokens=sampling.max_tokens,
            stop=sampling.stop,
            fallback_mode=arm.fallback_mode,
            tier=arm.tier,
            fallback_threshold=arm.fallback_threshold,
            timeout=sampling.timeout_seconds,
        )
    except RouterError as exc:
        return LiveRecord(
            item_id=item.id,
            arm=arm.name,
            source=item.source,
            gold=item.answer,
            text="",
            answer=None,
            correct=False,
            error=str(exc),
            latency_seconds=time.monotonic() - started,
        )
    seconds = time.monotonic() - started
    return record_of(item, arm, completion, seconds, await scorer.score(item, completion.text))


async def run_stream(
    address: str,
    items: Sequence[LiveItem],
    arm: Arm,
    *,
    window: int,
    sampling: Sampling,
    scorer: Any,
    concurrency: int = 2,
    configured: Mapping[str, float] | None = None,
    settle_seconds: float = 30.0,
    log: Log = _quiet,
) -> tuple[list[LiveRecord], list[dict[str, Any]]]:
    """Every item through the router as ``arm``, window by window; records in item order and
    one ``GetQuality`` snapshot per window."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    records: list[LiveRecord] = []
    snapshots: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def gated(item: LiveItem) -> LiveRecord:
        async with gate:
            return await _one(router, item, arm, sampling, scorer)

    async with Router(address, timeout=sampling.timeout_seconds) as router:
        parts = windows(len(items), window)
        for k, part in enumerate(parts):
            done = await asyncio.gather(*(gated(items[i]) for i in part))
            records.extend(done)
            last = k == len(parts) - 1
            snap = await _settle(router, configured or {}, settle_seconds if last else 2.0)
            snapshots.append(snap)
            right = sum(r.correct for r in records)
            log(
                f"{arm.name}: window {k + 1}/{len(parts)}, {len(records)}/{len(items)} items, "
                f"{right} right, {sum(r.escalated for r in records)} escalated, "
                f"{sum(r.error is not None for r in records)} errors, thresholds "
                f"{snap['thresholds']}, samples {snap['samples']}, "
                f"{time.monotonic() - started:.0f} s"
            )
    return records, snapshots


def policy_overrides(
    policy: str,
    *,
    static_threshold: float,
    fitted: Mapping[str, Any] | None,
    state_dir: Path,
    quality: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Router settings of a policy, merged over the platform's (``state_dir``: fresh state)."""
    if policy == "static":
        return {"quality": {"enabled": False}, "policy": {"fallback_threshold": static_threshold}}
    if policy == "fitted":
        if fitted is None:
            raise ValueError("the fitted policy needs a fit-confidence output")
        return {"quality": {"enabled": False}, "policy": dict(fitted["policy"])}
    if policy in LOOP_POLICIES:
        state_dir.mkdir(parents=True, exist_ok=True)
        overrides: dict[str, Any] = {
            "policy": {"fallback_threshold": static_threshold},
            "quality": {
                **(quality or {}),
                "enabled": True,
                "start_threshold": static_threshold,
                "store_path": str(state_dir / "samples.jsonl"),
                "state_path": str(state_dir / "controller.json"),
                "score_model_path": str(state_dir / "score-models.json"),
            },
            "judges": {"default": "agreement", "routes": dict.fromkeys(CODE_ROUTES, "code")},
        }
        if policy == "learned-start":
            overrides["start_tier"] = {
                "enabled": True,
                "state_path": str(state_dir / "start-tier.json"),
                "reset": True,
            }
        return overrides
    raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
