"""Judged samples and shared documents in a real Redis: one capped stream for every replica."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from router_svc.quality.samples import JudgedSample
from router_svc.state.factory import (
    open_state,
    redis_client,
    shared_documents,
    shared_sample_store,
)
from router_svc.state.redis_samples import RedisSampleStore
from router_svc.state.settings import StateBackend, StateSettings
from tests.integration.state.redis_server import RedisServer


def sample(request_id: str, tier: str = "small", judge: str = "exact") -> JudgedSample:
    return JudgedSample(
        request_id=request_id,
        tenant="acme",
        route="classifier",
        tier=tier,
        served_tier=tier,
        tiers_tried=(tier,),
        escalated=False,
        score=0.8,
        features={"mean_logprob": -0.2},
        routing_score=0.7,
        judge=judge,
        acceptable=True,
        judge_score=1.0,
        sample_weight=2.0,
        served_cost_usd=0.001,
        baseline_cost_usd=0.01,
        shadow_cost_usd=0.01,
        judge_cost_usd=0.0,
        time=1_700_000_000.0,
    )


def settings(server: RedisServer, **extra: object) -> StateSettings:
    return StateSettings.model_validate(
        {"backend": "redis", "url": server.url, "timeout_ms": 2000, **extra}
    )


async def test_two_replicas_share_one_capped_stream_of_samples(redis_server: RedisServer) -> None:
    config = settings(redis_server, samples_capacity=5)
    states = [open_state(config, CollectorRegistry()) for _ in range(2)]
    a, b = (shared_sample_store(state, config) for state in states)
    assert a is not None and b is not None
    for index in range(4):
        await a.add(sample(f"a{index}", tier="small"))
        await b.add(sample(f"b{index}", tier="large" if index % 2 else "small"))
    assert await a.count() == 5  # capped: the oldest three were trimmed
    # Kept: b1 a2 b2 a3 b3; the per-tier counts agree with the main stream.
    assert (await b.count("small"), await b.count("large")) == (3, 2)
    assert [s.request_id for s in await b.recent(3)] == ["b2", "a3", "b3"]  # oldest first
    assert [s.request_id for s in await a.recent(10, "large")] == ["b1", "b3"]
    assert await a.discard("b3", "exact")
    assert not await b.discard("b3", "exact")
    assert await b.count() == 4 and await b.count("large") == 1
    for state in states:
        await state.close()


async def test_samples_fall_back_to_the_replica_while_redis_is_down(
    redis_server: RedisServer,
) -> None:
    config = settings(redis_server, timeout_ms=300)
    state = open_state(config, CollectorRegistry())
    store = shared_sample_store(state, config)
    assert store is not None
    redis_server.kill()
    await store.add(sample("local"))
    assert store.degraded
    assert [s.request_id for s in await store.recent(5)] == ["local"]
    redis_server.start()
    assert await store.count() == 0  # back on the (restarted, empty) shared stream
    assert not store.degraded
    await state.close()


async def test_documents_are_versioned_and_written_by_compare_and_set(
    redis_server: RedisServer,
) -> None:
    config = settings(redis_server)
    state = open_state(config, CollectorRegistry())
    docs = shared_documents(state, config)
    assert docs is not None
    assert await docs.load("thresholds") is None
    assert await docs.save("thresholds", '{"small": 0.7}') == 1
    assert await docs.save("thresholds", '{"small": 0.8}', expected_version=1) == 2
    assert await docs.save("thresholds", '{"small": 0.9}', expected_version=1) is None  # stale
    assert await docs.load("thresholds") == (2, '{"small": 0.8}')
    await state.close()


def test_the_memory_backend_shares_nothing() -> None:
    config = StateSettings(backend=StateBackend.MEMORY)
    state = open_state(config, CollectorRegistry())
    assert shared_sample_store(state, config) is None
    assert shared_documents(state, config) is None


def test_a_store_needs_room(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="capacity"):
        RedisSampleStore(redis_client(settings(redis_server)), "x:", 0)


async def test_two_quality_loops_over_one_redis_certify_the_same_threshold(
    redis_server: RedisServer,
) -> None:
    # Two replicas' quality loops share the judged samples through Redis: the evidence one
    # replica judged moves the other's threshold too, and both end at the same value.
    import random

    from router_svc.quality import QualityLoop, QualitySettings

    config = settings(redis_server, samples_capacity=1000)
    quality = QualitySettings(enabled=True, min_samples=30, refit_every=10)
    loops = []
    for _ in range(2):
        store = shared_sample_store(open_state(config, CollectorRegistry()), config)
        assert store is not None
        loops.append(
            await QualityLoop.open(
                quality, ["small", "large"], "large", 0.65, rng=random.Random(0), store=store
            )
        )
    writer, reader = loops
    assert writer.threshold("small") == reader.threshold("small") == 1.0  # warm-up
    rng = random.Random(3)
    for index in range(120):
        score = rng.random()
        right = rng.random() < 0.6 + 0.4 * score  # higher scores are right more often
        judged = sample(f"w{index}", tier="small")
        await writer.record(
            JudgedSample(
                **{
                    **judged.__dict__,
                    "score": score,
                    "features": {"confidence": score},
                    "acceptable": right,
                    "sample_weight": 1.0,
                }
            )
        )
    await reader.recompute("small")
    await writer.recompute("small")
    assert writer.threshold("small") < 1.0  # the evidence certified a lower threshold
    assert reader.threshold("small") == writer.threshold("small")
    for loop in loops:
        await loop.close()
