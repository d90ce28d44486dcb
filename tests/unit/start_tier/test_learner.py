"""The learned start tier: choice by expected cost, learning from outcomes, persistence, reset."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from router_svc.start_tier import (
    CheapFeatures,
    FileStore,
    MemoryStore,
    StartTierLearner,
    StartTierMetrics,
    StartTierSettings,
    TierPrice,
    expected_costs,
    start_index,
)
from router_svc.start_tier.model import design, fit, prior_weights, sigmoid

TIERS = ("small", "large")
PRICES = (TierPrice(0.05, 0.10), TierPrice(0.50, 1.50))
CODE = "Write a python function that parses a CSV file and returns the rows: def parse(path):"
CHAT = "hi, what's the capital of France?"


def learner(
    store: MemoryStore | FileStore | None = None, background: bool = False, **settings: object
) -> StartTierLearner:
    values: dict[str, object] = {"enabled": True, "exploration": 0.0, "refit_every": 10}
    values.update(settings)
    return StartTierLearner(
        TIERS,
        PRICES,
        StartTierSettings.model_validate(values),
        CheapFeatures(64),
        store=store,
        rng=random.Random(0),
        background=background,
    )


def teach(model: StartTierLearner, rounds: int = 40) -> None:
    """Code prompts always escalate from small; chat prompts never do."""
    for _ in range(rounds):
        model.observe(CODE, None, ("small", "large"), {"small"})
        model.observe(CHAT, None, ("small",), set())


def test_two_tiers_start_cheap_exactly_while_p_is_below_one_minus_the_price_ratio() -> None:
    costs = [1.0, 10.0]
    assert start_index([0.89], costs) == 0
    assert start_index([0.91], costs) == 1
    assert expected_costs([0.5], costs) == [6.0, 10.0]


def test_a_middle_tier_can_be_the_start() -> None:
    # The small tier almost surely escalates, the medium one almost never: start at medium.
    assert start_index([0.99, 0.01], [1.0, 3.0, 10.0]) == 1
    assert start_index([0.99, 0.01], [1.0, 3.0, 10.0], lowest=2) == 2


def test_the_untrained_model_is_the_classifier_prior() -> None:
    model = learner()
    features = CheapFeatures(64).features(CHAT)
    for score in (0.1, 0.5, 0.9):
        p = model.choose(CHAT, score).p_escalate[0]
        assert p == pytest.approx(1 - score, abs=1e-6)
    # Without a score: an even chance, so a cheap tier 10x cheaper is worth trying.
    assert float(sigmoid(design(features, None) @ prior_weights(features.shape[0], 0))) == 0.5
    assert model.choose(CHAT, None).index == 0


def test_it_learns_which_prompts_escalate() -> None:
    model = learner()
    teach(model)
    assert model.version >= 1 and model.trained == 80
    code, chat = model.choose(CODE, None), model.choose(CHAT, None)
    assert code.p_escalate[0] > 0.93 and code.index == 1
    assert chat.p_escalate[0] < 0.2 and chat.index == 0


def test_judged_samples_teach_too() -> None:
    model = learner()
    for _ in range(40):
        model.observe_judged(CODE, None, "small", acceptable=False)
    assert model.choose(CODE, None).p_escalate[0] > 0.9
    model.observe_judged(CODE, None, "large", acceptable=False)  # the largest: nothing to learn
    assert model.trained == 40


def test_tier_errors_and_the_largest_tier_are_not_labels() -> None:
    model = learner()
    model.observe(CODE, None, ("large",), set())
    assert model.trained == 0


def test_persists_across_restarts_and_a_reset_forgets(tmp_path: Path) -> None:
    path = tmp_path / "start.npz"
    first = learner(FileStore(path))
    teach(first)
    first.close()
    again = learner(FileStore(path))
    assert (again.version, again.trained) == (first.version, first.trained)
    assert again.choose(CODE, None).index == 1
    again.reset()
    assert (again.version, again.trained) == (0, 0)
    assert not path.exists()
    assert again.choose(CODE, None).p_escalate[0] == pytest.approx(0.5)
    # The reset setting forgets a saved model at start.
    teach(again)
    again.close()
    fresh = learner(FileStore(path), reset=True)
    assert fresh.trained == 0 and not path.exists()


def test_a_model_of_another_feature_layout_is_not_loaded() -> None:
    store = MemoryStore()
    model = learner(store)
    teach(model)
    other = StartTierLearner(
        TIERS,
        PRICES,
        StartTierSettings(enabled=True),
        CheapFeatures(32),
        store=store,
        background=False,
    )
    assert other.trained == 0


def test_background_refit_runs_off_the_caller_and_metrics_follow() -> None:
    registry = CollectorRegistry()
    metrics = StartTierMetrics(registry, TIERS)
    model = StartTierLearner(
        TIERS,
        PRICES,
        StartTierSettings(enabled=True, exploration=0.0, refit_every=5),
        CheapFeatures(64),
        metrics=metrics,
        background=True,
    )
    teach(model, 10)
    model.wait()
    model.choose(CODE, None)
    model.close()
    assert (registry.get_sample_value("tierroute_router_start_tier_model_version") or 0) >= 1
    assert registry.get_sample_value("tierroute_router_start_tier_training_outcomes") == 20
    decided = [
        registry.get_sample_value(
            "tierroute_router_start_tier_decisions_total", {"tier": tier, "explored": "false"}
        )
        for tier in TIERS
    ]
    assert sum(d or 0 for d in decided) == 1


def test_a_refit_stops_at_its_time_cap() -> None:
    ticks = iter(range(100))
    x = np.random.default_rng(0).normal(size=(50, 5))
    y = (x[:, 0] > 0).astype(float)
    result = fit(x, y, np.zeros(5), 1.0, 0.5, clock=lambda: float(next(ticks)))
    assert result.iterations == 1 and not result.converged


def test_a_skipped_region_that_stops_escalating_is_tried_again() -> None:
    model = learner(exploration=0.2, refit_every=5)
    for _ in range(40):
        model.observe(CODE, None, ("small", "large"), {"small"})
    assert model.choose(CODE, None).p_escalate[0] > 0.93
    # The code prompts now stay on the small tier; only explored requests reach it.
    cheap_again = None
    for n in range(400):
        choice = model.choose(CODE, None)
        if choice.index == 0:
            model.observe(CODE, None, ("small",), set())
            if not choice.explored:
                cheap_again = n
                break
    assert cheap_again is not None and cheap_again < 200
