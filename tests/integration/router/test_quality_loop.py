"""The quality loop in the real router process, over scripted tiers whose right answers are known.

Two ``python -m model_svc.scripted_server`` tiers answer six arithmetic prompts by rule. The
small tier is right on the one-step prompts and wrong on the multi-step ones, and its
confidence ranks backwards: its right answers come with low log-probabilities (confidence 0.5,
below the starting threshold 0.65: escalated) and its wrong ones with high ones (0.88: served).
The large tier is always right. The router runs with the quality loop on (every answer sampled,
few samples needed, the ``agreement`` judge): judged samples accumulate, the learned score takes
over from the confidence, the threshold moves, and in the end the wrong-answer kind is escalated
and the right-answer kind served. Then feedback, a restart, and ``tierroute quality``.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tierroute.launch import ServiceProcess, launch_module
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
R = router_service_pb2
PRICES = {"small": (0.05, 0.10), "large": (0.50, 1.50)}
START_THRESHOLD = 0.65

# (tag, question, right answer, the small tier's answer): one-step ones right, multi-step wrong.
EASY = [
    ("[e1]", "What is 12 + 5?", 17, 17),
    ("[e2]", "What is 9 + 30?", 39, 39),
    ("[e3]", "What is 40 - 8?", 32, 32),
]
HARD = [
    ("[h1]", "A box holds 7 pens; 3 boxes and 4 loose pens make how many?", 25, 24),
    ("[h2]", "Tom has 5 apples, buys 3 bags of 6 and eats 2; how many are left?", 21, 23),
    ("[h3]", "A train goes 60 km an hour for 2 hours, then 30 km; how far in all?", 150, 120),
]
SMALL_RIGHT_LOGPROB = -1.0  # confidence 0.5: below the start threshold
SMALL_WRONG_LOGPROB = -0.02  # confidence 0.88: above it
LARGE_LOGPROB = -0.05


def _rules(tier: str) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for kind in (EASY, HARD):
        for tag, _, right, small in kind:
            if tier == "large":
                answer, logprob = right, LARGE_LOGPROB
            else:
                answer = small
                logprob = SMALL_RIGHT_LOGPROB if small == right else SMALL_WRONG_LOGPROB
            rules.append(
                {"contains": tag, "answer": f"The answer is {answer}.", "logprob": logprob}
            )
    return rules


@dataclass
class Stack:
    small: ServiceProcess
    large: ServiceProcess
    config: Path
    logs: Path


def _start_tier(tier: str, logs: Path) -> ServiceProcess:
    rules = logs / f"{tier}-rules.json"
    rules.write_text(json.dumps(_rules(tier)))
    return launch_module(
        "model_svc.scripted_server",
        ["--tier", tier, "--rules", str(rules), "--token-delay", "0.0005"],
        cwd=ROOT,
        log_path=logs / f"{tier}.log",
        timeout_seconds=60,
    )


def _router(stack: Stack, name: str) -> ServiceProcess:
    return launch_module(
        "router_svc",
        ["--config", str(stack.config)],
        cwd=ROOT,
        log_path=stack.logs / f"{name}.log",
        timeout_seconds=60,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("quality-loop")
    small = _start_tier("small", logs)
    try:
        large = _start_tier("large", logs)
    except Exception:
        small.stop()
        raise
    config = logs / "router.yaml"
    config.write_text(
        json.dumps(
            {
                "classifier": {"enabled": False},
                "rules": {"enabled": False},
                "policy": {"fallback_threshold": START_THRESHOLD, "fallback_mode": "BUFFERED"},
                "tiers": [
                    {
                        "name": name,
                        "endpoints": [process.address],
                        "input_usd_per_mtok": PRICES[name][0],
                        "output_usd_per_mtok": PRICES[name][1],
                        "timeout_seconds": 10,
                    }
                    for name, process in (("small", small), ("large", large))
                ],
                "resilience": {"retries": 0, "health_check_interval_seconds": 1},
                "shadow": {"max_in_flight": 8},
                "quality": {
                    "enabled": True,
                    # Start from the static threshold (not the default escalate-all warm-up),
                    # to show the controller correcting a threshold that starts out wrong.
                    "warmup": "start",
                    "state_dir": str(logs / "state"),
                    # A small promise and few samples, so that the test runs in seconds.
                    "target": 0.9,
                    "delta": 0.2,
                    "min_samples": 10,
                    "score_min_samples": 5,
                    "refit_every": 5,
                    "initial_rate": 1.0,
                    "floor_rate": 1.0,
                    "escalated_rate": 1.0,
                    "report_interval_seconds": 1,
                },
                "judges": {"default": "agreement"},
            }
        )
    )
    try:
        yield Stack(small, large, config, logs)
    finally:
        large.stop()
        small.stop()


def _chat(text: str) -> common_pb2.Prompt:
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)
    return common_pb2.Prompt(chat=common_pb2.Chat(messages=[message]))


async def _ask(
    stub: router_service_pb2_grpc.RouterServiceStub, text: str, tenant: str = "acme"
) -> tuple[str, bool]:
    """(request id, escalated) of one Generate call."""
    request = R.RouterServiceGenerateRequest(
        prompt=_chat(text), sampling=common_pb2.SamplingParams(max_tokens=32)
    )
    request_id, escalated = "", False
    async for event in stub.Generate(request, timeout=10, metadata=(("x-tenant", tenant),)):
        kind = event.WhichOneof("event")
        if kind == "routed":
            request_id = event.routed.request_id
        elif kind == "finished":
            escalated = event.finished.escalated
    return request_id, escalated


async def _wait_for_samples(
    stub: router_service_pb2_grpc.RouterServiceStub, at_least: int
) -> R.GetQualityResponse:
    for _ in range(100):
        quality: R.GetQualityResponse = await stub.GetQuality(R.GetQualityRequest(), timeout=5)
        if quality.overall.samples >= at_least:
            return quality
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} judged samples: {quality.overall.samples}")


async def test_the_loop_learns_to_escalate_the_wrong_kind(stack: Stack) -> None:
    router = await asyncio.to_thread(_router, stack, "router")
    try:
        async with grpc.aio.insecure_channel(router.address) as channel:
            stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            first = await stub.GetQuality(R.GetQualityRequest(), timeout=5)
            assert first.enabled and first.overall.samples == 0
            assert [(t.tier, t.value) for t in first.thresholds] == [("small", START_THRESHOLD)]

            rng = random.Random(7)
            kinds = ["easy", "hard"] * 60
            rng.shuffle(kinds)
            trajectory: list[float] = [START_THRESHOLD]
            escalated: dict[str, list[bool]] = {"easy": [], "hard": []}
            ids: list[str] = []
            for i, kind in enumerate(kinds):
                tag, question, _, _ = rng.choice(EASY if kind == "easy" else HARD)
                request_id, went_up = await _ask(stub, f"{tag} {question}")
                ids.append(request_id)
                escalated[kind].append(went_up)
                if i % 10 == 9:
                    # Judging is off the caller's path: let it catch up before going on.
                    quality = await _wait_for_samples(stub, i + 1)
                    value = quality.thresholds[0].value
                    if value != trajectory[-1]:
                        trajectory.append(value)

            quality = await _wait_for_samples(stub, len(kinds))
            threshold = quality.thresholds[0]
            late = {kind: sum(flags[-20:]) / 20 for kind, flags in escalated.items()}
            print(
                f"threshold trajectory {trajectory}; judged samples {quality.overall.samples}; "
                f"escalation rate early easy/hard "
                f"{sum(escalated['easy'][:20]) / 20:.2f}/{sum(escalated['hard'][:20]) / 20:.2f}, "
                f"last 20 easy/hard {late['easy']:.2f}/{late['hard']:.2f}; "
                f"estimate {quality.overall.estimate:.3f} "
                f"[{quality.overall.lower_bound:.3f}, {quality.overall.upper_bound:.3f}]"
            )
            assert quality.overall.samples >= len(kinds)
            assert 0 < quality.overall.lower_bound <= quality.overall.estimate
            assert quality.overall.estimate <= quality.overall.upper_bound <= 1
            assert quality.confidence_level == pytest.approx(0.8)
            assert threshold.value != START_THRESHOLD and threshold.samples >= 10
            assert threshold.HasField("last_change_time")
            assert {j.judge for j in quality.judges} == {"agreement"}
            assert quality.baseline_cost_usd > quality.cost_usd > 0
            assert quality.shadow_cost_usd > 0  # served-small answers were replayed on large
            # At first the confidence ranks backwards: the right kind escalates, the wrong is
            # served. In the end the learned score escalates the wrong kind only.
            assert sum(escalated["easy"][:5]) == 5 and not any(escalated["hard"][:5])
            assert late["hard"] == 1.0 and late["easy"] == 0.0

            await _feedback_cases(stub, ids[-1])
            before = await stub.GetQuality(R.GetQualityRequest(), timeout=5)
    finally:
        await asyncio.to_thread(router.stop)

    # The state survives a restart: the thresholds come back with their evidence.
    again = await asyncio.to_thread(_router, stack, "router-again")
    try:
        async with grpc.aio.insecure_channel(again.address) as channel:
            stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            after = await stub.GetQuality(R.GetQualityRequest(), timeout=5)
            assert after.overall.samples == before.overall.samples
            assert after.thresholds[0].samples >= before.thresholds[0].samples
            # Reloaded, then recomputed at once on every reloaded sample (the feedback too):
            # either it stands, or the change the log records starts from the saved value.
            saved = before.thresholds[0].value
            if after.thresholds[0].value != pytest.approx(saved):
                changes = [
                    json.loads(line)
                    for line in (stack.logs / "router-again.log").read_text().splitlines()
                    if "escalation_threshold_changed" in line
                ]
                assert changes and changes[0]["old"] == pytest.approx(saved)
            assert after.thresholds[0].value < START_THRESHOLD
            # And it still escalates the wrong kind and serves the right one.
            assert (await _ask(stub, f"{HARD[0][0]} {HARD[0][1]}"))[1]
            assert not (await _ask(stub, f"{EASY[0][0]} {EASY[0][1]}"))[1]

            settled = await _wait_for_samples(stub, after.overall.samples + 2)
            printed = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "tierroute_tools.cli", "quality", "--router", again.address],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert printed.returncode == 0, printed.stderr
            print(printed.stdout)
            assert "small" in printed.stdout
            assert f"{settled.overall.estimate:.1%}" in printed.stdout
    finally:
        await asyncio.to_thread(again.stop)


async def _feedback_cases(stub: router_service_pb2_grpc.RouterServiceStub, request_id: str) -> None:
    acme = (("x-tenant", "acme"),)
    stored = await stub.SubmitFeedback(
        R.SubmitFeedbackRequest(request_id=request_id, score=0.2, comment="wrong total"),
        timeout=5,
        metadata=acme,
    )
    assert stored.judge == "feedback" and not stored.acceptable and not stored.replaced
    assert stored.acceptance_threshold == 0.5 and stored.served_tier in ("small", "large")
    again = await stub.SubmitFeedback(
        R.SubmitFeedbackRequest(request_id=request_id, score=0.9), timeout=5, metadata=acme
    )
    assert again.replaced and again.acceptable
    quality = await stub.GetQuality(R.GetQualityRequest(), timeout=5)
    feedback = {j.judge: j for j in quality.judges}["feedback"]
    assert feedback.samples == 1 and feedback.acceptable == 1

    async def code_of(request: R.SubmitFeedbackRequest, tenant: str = "acme") -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SubmitFeedback(request, timeout=5, metadata=(("x-tenant", tenant),))
        return caught.value.code()

    assert await code_of(R.SubmitFeedbackRequest(request_id="never-seen", score=1)) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await code_of(R.SubmitFeedbackRequest(request_id=request_id, score=1), "other") == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    for bad in (
        R.SubmitFeedbackRequest(request_id=request_id),  # no score
        R.SubmitFeedbackRequest(request_id=request_id, score=1.5),
        R.SubmitFeedbackRequest(request_id="", score=1),
        R.SubmitFeedbackRequest(request_id=request_id, score=1, comment="x" * 1001),
    ):
        assert await code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT
