"""The learned start tier shared by two replicas through a real Redis: one learns, both route."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from router_svc.start_tier import CheapFeatures, StartTierLearner, StartTierSettings, TierPrice
from router_svc.state.factory import open_state, shared_start_tier_outcomes
from router_svc.state.settings import StateSettings
from router_svc.state.start_tier_outcomes import SharedStartTierOutcomes
from tests.integration.state.redis_server import RedisServer

TIERS = ("small", "large")
PRICES = (TierPrice(0.05, 0.10), TierPrice(0.50, 1.50))
CODE = "Write a python function that parses a CSV file and returns the rows: def parse(path):"
CHAT = "hi, what's the capital of France?"


def learner(buckets: int = 64) -> StartTierLearner:
    return StartTierLearner(
        TIERS,
        PRICES,
        StartTierSettings(enabled=True, exploration=0.0, refit_every=10),
        CheapFeatures(buckets),
        background=False,
    )


def teach(model: StartTierLearner, rounds: int) -> None:
    """Code prompts always escalate from small; chat prompts never do."""
    for _ in range(rounds):
        model.observe(CODE, None, ("small", "large"), {"small"})
        model.observe(CHAT, None, ("small",), set())


def replica(server: RedisServer, model: StartTierLearner) -> SharedStartTierOutcomes:
    config = StateSettings.model_validate(
        {"backend": "redis", "url": server.url, "timeout_ms": 500}
    )
    sync = shared_start_tier_outcomes(open_state(config, CollectorRegistry()), config, model, 1.0)
    assert sync is not None
    return sync


async def test_a_replica_that_never_saw_the_traffic_learns_it_from_the_other(
    redis_server: RedisServer,
) -> None:
    a, b = learner(), learner()
    sync_a, sync_b = replica(redis_server, a), replica(redis_server, b)
    await sync_b.sync()  # b starts reading here
    teach(a, 30)
    assert b.trained == 0 and b.choose(CODE, None).index == 0  # alone, b starts code cheap
    await sync_a.sync()
    await sync_b.sync()
    assert (sync_a.sent, sync_b.absorbed) == (60, 60)
    assert sync_a.absorbed == 0  # its own outcomes are not absorbed twice
    # One batch absorbed, one refit (a refitted every 10): the last fits read the same outcomes.
    assert b.trained == 60 and (a.version, b.version) == (6, 1)
    # b routes like a, and code now starts at the largest tier.
    assert b.choose(CODE, None).index == a.choose(CODE, None).index == 1
    assert b.choose(CHAT, None).index == 0
    assert np.allclose(b.choose(CODE, None).p_escalate, a.choose(CODE, None).p_escalate, atol=1e-3)
    # Both directions: what b learns reaches a.
    teach(b, 5)
    await sync_b.sync()
    await sync_a.sync()
    assert sync_a.absorbed == 10 and a.trained == 70
    await sync_a.close()
    await sync_b.close()


async def test_outcomes_wait_on_the_replica_while_redis_is_down(redis_server: RedisServer) -> None:
    a, b = learner(), learner()
    sync_a, sync_b = replica(redis_server, a), replica(redis_server, b)
    await sync_b.sync()
    redis_server.kill()
    teach(a, 5)
    await sync_a.sync()  # fails within its timeout, keeps the outcomes
    assert sync_a.degraded and sync_a.sent == 0
    assert a.choose(CODE, None) is not None  # routing goes on without Redis
    redis_server.start()  # empty: the stream is gone, the outcomes are not
    await sync_b.sync()
    await sync_a.sync()
    assert not sync_a.degraded and sync_a.sent == 10
    await sync_b.sync()
    assert sync_b.absorbed == 10 and b.trained == 10
    await sync_a.close()
    await sync_b.close()


async def test_another_feature_layout_is_not_absorbed(redis_server: RedisServer) -> None:
    a, b = learner(64), learner(32)
    sync_a, sync_b = replica(redis_server, a), replica(redis_server, b)
    await sync_b.sync()
    teach(a, 5)
    await sync_a.sync()
    await sync_b.sync()
    assert sync_a.sent == 10 and sync_b.absorbed == 0 and b.trained == 0
    await sync_a.close()
    await sync_b.close()


async def test_the_router_shares_its_start_tier_when_its_state_is_in_redis(
    redis_server: RedisServer,
) -> None:
    from router_svc.config import RouterSettings
    from router_svc.server import build_router

    def settings(backend: str) -> RouterSettings:
        return RouterSettings.model_validate(
            {
                "server": {"port": 0},
                "classifier": {"enabled": False},
                "start_tier": {"enabled": True, "embedding": False},
                "state": {"backend": backend, "url": redis_server.url},
            }
        )

    shared, alone = build_router(settings("redis")), build_router(settings("memory"))
    try:
        await shared.ready()
        await alone.ready()
        assert shared.start_tier_sync is not None and alone.start_tier_sync is None
        assert shared.start_tier is not None
        shared.start_tier.observe(CODE, None, ("small", "large"), {"small"})
        await shared.start_tier_sync.sync()
        assert shared.start_tier_sync.sent == 1
    finally:
        await shared.shutdown()
        await alone.shutdown()
