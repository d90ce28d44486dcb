"""Judged samples: shadow when a cheaper tier served, no shadow when the largest did, undecided
judgments dropped and counted, and feedback stored, replaced and refused as the contract says."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router_svc.answer_scoring import TierAnswer
from router_svc.cascade import Chunk, TierResult
from router_svc.costs import Prices
from router_svc.feedback import RecentRequests, check_feedback, store_feedback
from router_svc.judged_samples import JudgedSampler, ServedRequest
from router_svc.quality import QualityLoop, QualityMetrics, QualitySettings
from router_svc.quality_hook import QualityOff, QualityOn
from router_svc.quality_pb import quality_pb
from tierroute.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from tierroute.judges import JudgeSettings, build_judges

LARGE_PRICES = Prices(1.0, 2.0)
PROSE = "Paris is the capital. It is large. It has many museums and famous places to visit."


@dataclass(frozen=True)
class Text:
    text: str


def answer(tier: str, text: str, score: float | None = 0.7) -> TierAnswer:
    return TierAnswer(
        tier,
        pieces=[(text, [-0.1])],
        confidence=0.8,
        features=None if score is None else {"confidence": 0.8},
        score=score,
    )


def request(
    request_id: str = "r1",
    served: str = "small",
    small_text: str = "The answer is 4.",
    large_text: str | None = None,
    tenant: str = "acme",
) -> ServedRequest:
    answers = {"small": answer("small", small_text)}
    if large_text is not None:
        answers["large"] = answer("large", large_text, score=None)
    return ServedRequest(
        request_id=request_id,
        tenant=tenant,
        route="default",
        prompt="What is 2 + 2?",
        first_tier="small",
        served_tier=served,
        tiers_tried=("small",) if served == "small" else ("small", "large"),
        escalated=served != "small",
        degraded=False,
        answers=answers,
        routing_score=None,
        cost_usd=0.001,
        baseline_cost_usd=0.01,
        time=1_700_000_000.0,
    )


class Shadow:
    """The largest tier's replay: answers ``text``, counts its calls."""

    def __init__(self, text: str = "The answer is 4.", fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.calls = 0

    def __call__(self) -> AsyncGenerator[Chunk[Text] | TierResult[object], None]:
        self.calls += 1

        async def go() -> AsyncGenerator[Chunk[Text] | TierResult[object], None]:
            if self.fail:
                raise RuntimeError("tier down")
            yield Chunk(Text(self.text), 4, 0.9)
            yield TierResult(0, 1000, 500, 0.9, None)

        return go()


async def open_loop(registry: CollectorRegistry | None = None) -> QualityLoop:
    settings = QualitySettings(enabled=True, initial_rate=1.0, floor_rate=1.0, min_samples=5)
    metrics = None
    if registry is not None:
        metrics = QualityMetrics(registry, ["small", "large"], ["agreement", "feedback"])
    return await QualityLoop.open(
        settings, ["small", "large"], "large", 0.65, metrics=metrics, rng=random.Random(1)
    )


async def settle(sampler: JudgedSampler) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
    await asyncio.gather(*list(sampler._tasks))


async def test_a_cheaper_served_answer_is_shadowed_judged_and_recorded() -> None:
    loop = await open_loop()
    sampler = JudgedSampler(
        loop, build_judges(JudgeSettings(fallbacks={})), "large", LARGE_PRICES, 4
    )
    shadow = Shadow("Sure: 2 + 2 = 5")
    assert sampler.submit(request(), shadow)
    await settle(sampler)
    (sample,) = await loop.samples()
    assert shadow.calls == 1 and not sample.acceptable and sample.judge == "agreement"
    # 1000 in at 1 USD/M and 500 out at 2 USD/M.
    assert sample.shadow_cost_usd == pytest.approx(0.002) == sampler.shadow_cost_usd
    assert (sample.tier, sample.served_tier, sample.score, sample.sample_weight) == (
        "small",
        "small",
        0.7,
        1.0,
    )


async def test_an_escalated_request_is_judged_against_the_served_answer_without_a_shadow() -> None:
    loop = await open_loop()
    sampler = JudgedSampler(
        loop, build_judges(JudgeSettings(fallbacks={})), "large", LARGE_PRICES, 4
    )
    shadow = Shadow()
    assert sampler.submit(request(served="large", large_text="It is 4."), shadow)
    await settle(sampler)
    (sample,) = await loop.samples()
    assert shadow.calls == 0 and sample.acceptable and sample.shadow_cost_usd == 0
    assert sample.escalated and sample.tiers_tried == ("small", "large")


async def test_decided_verdicts_reach_the_other_learners() -> None:
    # The start tier learns from judged answers: each decided verdict is handed on with the
    # request it judged; an undecided one (prose against prose) is not.
    heard: list[tuple[str, str, bool]] = []
    loop = await open_loop()
    sampler = JudgedSampler(
        loop,
        build_judges(JudgeSettings(fallbacks={})),
        "large",
        LARGE_PRICES,
        4,
        on_verdict=lambda r, ok: heard.append((r.request_id, r.first_tier, ok)),
    )
    assert sampler.submit(request("wrong"), Shadow("Sure: 2 + 2 = 5"))
    assert sampler.submit(request("right", served="large", large_text="It is 4."), Shadow())
    assert sampler.submit(request("prose", small_text=PROSE), Shadow(PROSE))
    await settle(sampler)
    assert sorted(heard) == [("right", "small", True), ("wrong", "small", False)]


async def test_undecided_and_failed_judgments_are_dropped_and_counted() -> None:
    registry = CollectorRegistry()
    loop = await open_loop(registry)
    sampler = JudgedSampler(
        loop, build_judges(JudgeSettings(fallbacks={})), "large", LARGE_PRICES, 4
    )
    # Prose with no canonical result: the agreement judge cannot tell.
    sampler.submit(request(small_text="Paris, I think"), Shadow(PROSE))
    sampler.submit(request("r2"), Shadow(fail=True))
    await settle(sampler)
    assert await loop.samples() == []
    labels = {"tier": "small", "judge": "agreement", "verdict": "undecided"}
    assert registry.get_sample_value("tierroute_router_judged_samples_total", labels) == 1


async def test_requests_without_a_cheaper_answer_are_not_offered() -> None:
    loop = await open_loop()
    sampler = JudgedSampler(
        loop, build_judges(JudgeSettings(fallbacks={})), "large", LARGE_PRICES, 1
    )
    direct = request()
    direct = ServedRequest(**{**direct.__dict__, "first_tier": "large"})
    unfinished = request()
    unfinished.answers["small"].confidence = None
    assert not sampler.submit(direct, Shadow()) and not sampler.submit(unfinished, Shadow())


@pytest.mark.parametrize(
    ("request_id", "score", "comment", "field"),
    [
        ("", 1.0, "", "request_id"),
        ("x" * 129, 1.0, "", "request_id"),
        ("caf\u00e9", 1.0, "", "request_id"),
        ("r1", None, "", "score"),
        ("r1", 1.5, "", "score"),
        ("r1", float("nan"), "", "score"),
        ("r1", 0.5, "x" * 1001, "comment"),
    ],
)
def test_invalid_feedback_names_the_field(
    request_id: str, score: float | None, comment: str, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_feedback(request_id, score, comment)
    assert caught.value.field == field


async def test_feedback_is_stored_replaced_and_refused_for_others() -> None:
    loop = await open_loop()
    recent = RecentRequests(2)
    recent.remember(request("r1"))
    stored = await store_feedback(loop, recent, "r1", "acme", 0.0, clock=lambda: 5.0)
    assert (stored.acceptable, stored.replaced, stored.recorded_time) == (False, False, 5.0)
    again = await store_feedback(loop, recent, "r1", "acme", 0.5)
    assert again.acceptable and again.replaced and again.acceptance_threshold == 0.5
    (sample,) = await loop.samples()
    assert sample.judge == "feedback" and sample.acceptable and sample.score == 0.7
    with pytest.raises(PermissionDeniedError):
        await store_feedback(loop, recent, "r1", "other", 1.0)
    recent.remember(request("r2"))
    recent.remember(request("r3"))  # capacity 2: r1 is forgotten
    with pytest.raises(NotFoundError):
        await store_feedback(loop, recent, "r1", "acme", 1.0)


async def test_get_quality_is_empty_when_the_loop_is_off_and_full_when_on(tmp_path: Path) -> None:
    off = quality_pb(await QualityOff().snapshot(), ("small", "large"))
    assert not off.enabled and not off.thresholds
    loop = await open_loop()
    sampler = JudgedSampler(
        loop, build_judges(JudgeSettings(fallbacks={})), "large", LARGE_PRICES, 4
    )
    on = QualityOn(loop, sampler, RecentRequests(10), ("small", "large"), 0, clock=lambda: 7.0)
    assert on.thresholds() == {"small": 1.0}  # warm-up: escalate all until certified
    on.finished(request(), Shadow())
    await settle(sampler)
    reply = quality_pb(await on.snapshot(), ("small", "large"))
    assert reply.enabled and reply.overall.samples == 1 and reply.confidence_level == 0.9
    assert [(t.tier, t.value, t.samples) for t in reply.thresholds] == [("small", 1.0, 0)]
    assert reply.cost_usd == 0.001 and reply.shadow_cost_usd == pytest.approx(0.002)
    assert [(j.judge, j.samples, j.acceptable) for j in reply.judges] == [("agreement", 1, 1)]
    assert reply.computed_time.seconds == 7
    await on.close()
