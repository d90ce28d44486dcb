"""The quality loop over a scripted stream whose right and wrong answers are known."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router_svc.quality.escalation_score import ScoreModel, out_of_fold_scores
from router_svc.quality.loop import QualityLoop
from router_svc.quality.metrics import QualityMetrics
from router_svc.quality.samples import JudgedSample
from router_svc.quality.settings import QualitySettings
from tests.unit.quality.factory import sample
from tierroute.routing_metrics import auroc


def answer(rng: random.Random, i: int) -> tuple[bool, dict[str, float]]:
    """The small tier's answer: right 80% of the time; its confidence ranks backwards, its
    final-span log-probability ranks right."""
    ok = rng.random() < 0.8
    return ok, {
        "confidence": rng.uniform(0.2, 0.6) if ok else rng.uniform(0.5, 0.9),
        "final_span_mean_logprob": rng.gauss(-0.1 if ok else -2.0, 0.3),
    }


async def run_stream(loop: QualityLoop, n: int, seed: int) -> list[JudgedSample]:
    rng = random.Random(seed)
    kept = []
    for i in range(n):
        ok, features = answer(rng, i)
        score = loop.escalation_score("small", features)
        escalated = score < loop.threshold("small")
        decision = await loop.should_sample("small", escalated)
        if not decision.sampled:
            continue
        s = sample(
            request_id=str(i),
            acceptable=ok,
            score=score,
            features=features,
            weight=decision.weight,
            served_tier="large" if escalated else "small",
        )
        kept.append(s)
        await loop.record(s)
    return kept


def settings(tmp_path: Path) -> QualitySettings:
    return QualitySettings(
        initial_rate=1.0,
        floor_rate=0.2,
        min_samples=30,
        score_min_samples=20,
        refit_every=50,
        store_path=tmp_path / "samples.jsonl",
        state_path=tmp_path / "thresholds.json",
        score_model_path=tmp_path / "score_models.json",
    )


async def test_the_loop_learns_a_ranking_score_and_certifies_a_threshold(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["agreement"])
    loop = await QualityLoop.open(
        settings(tmp_path), ["small", "large"], "large", 0.65, metrics, random.Random(3)
    )
    assert loop.controller.tiers() == ["small"]
    assert loop.threshold("small") == 1.0 and not loop.score_model("small").fitted  # warm-up
    await run_stream(loop, 1500, seed=1)
    model = loop.score_model("small")
    assert model.fitted and model.version >= 2
    state = loop.controller.state("small")
    assert state.certified and state.evidence >= 200
    # On fresh traffic the certified threshold keeps most right answers and few wrong ones.
    rng = random.Random(99)
    fresh = [answer(rng, i) for i in range(3000)]
    kept = [ok for ok, f in fresh if model.score(f) >= loop.threshold("small")]
    lost = sum(1 for ok in kept if not ok) / len(fresh)
    assert lost <= 0.05 and len(kept) / len(fresh) > 0.6
    scores = [model.score(f) for _, f in fresh]
    assert auroc(scores, [ok for ok, _ in fresh]) > 0.95
    report = await loop.report()
    assert report.overall.lower >= 0.9 and report.by_tier["small"].samples > 0
    ratio = registry.get_sample_value("tierroute_router_quality_ratio", {"tier": "all"})
    assert ratio == pytest.approx(report.overall.estimate)
    threshold = registry.get_sample_value(
        "tierroute_router_escalation_threshold", {"tier": "small"}
    )
    assert threshold == loop.threshold("small")


async def test_the_loop_survives_a_restart(tmp_path: Path) -> None:
    loop = await QualityLoop.open(
        settings(tmp_path), ["small", "large"], "large", 0.65, rng=random.Random(4)
    )
    kept = await run_stream(loop, 600, seed=2)
    assert loop.pin("small", 0.9) is not None
    version = loop.score_model("small").version
    await loop.close()
    again = await QualityLoop.open(settings(tmp_path), ["small", "large"], "large", 0.65)
    assert again.threshold("small") == 0.9 and again.controller.state("small").pinned
    # The saved model came back and was refitted on the reloaded samples.
    assert again.score_model("small").version == version + 1
    change = again.unpin("small")
    assert change is not None and change.new == again.controller.state("small").computed
    # Reopening recomputed from every saved sample.
    assert again.controller.state("small").evidence == len(kept)
    assert again.controller.state("small").certified


async def test_other_tiers_are_never_sampled_and_undecided_judgments_are_counted(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, ["small"], ["llm"])
    loop = await QualityLoop.open(settings(tmp_path), ["small", "large"], "large", 0.65, metrics)
    assert not (await loop.should_sample("large", False)).sampled
    assert (await loop.should_sample("small", False)).sampled  # initial rate 1
    loop.record_undecided("small", "llm", 0.01, 0.002)
    labels = {"tier": "small", "judge": "llm", "verdict": "undecided"}
    assert registry.get_sample_value("tierroute_router_judged_samples_total", labels) == 1


def test_out_of_fold_scores_never_score_a_sample_with_a_model_fitted_on_it() -> None:
    rng = random.Random(5)
    # Pure noise: in-sample scores would rank the labels, out-of-fold ones cannot.
    samples = [
        sample(
            acceptable=rng.random() < 0.5, features={f"x{j}": rng.gauss(0, 1) for j in range(30)}
        )
        for _ in range(80)
    ]
    model = ScoreModel(min_samples=10, l2=1e-3).refit(samples)
    labels = [s.acceptable for s in samples]
    in_sample = auroc([model.score(s.features) for s in samples], labels)
    out_of_fold = auroc(out_of_fold_scores(model, samples), labels)
    assert in_sample > 0.9 and out_of_fold < 0.7
    prior = ScoreModel()
    assert out_of_fold_scores(prior, samples[:2]) == [prior.score(s.features) for s in samples[:2]]


async def test_saved_score_models_come_back_without_samples(tmp_path: Path) -> None:
    loop = await QualityLoop.open(
        settings(tmp_path), ["small", "large"], "large", 0.65, rng=random.Random(6)
    )
    await run_stream(loop, 600, seed=3)
    await loop.close()
    saved = loop.score_model("small")
    lost = settings(tmp_path).model_copy(update={"store_path": None})
    again = await QualityLoop.open(lost, ["small", "large"], "large", 0.65)
    # The threshold in force was certified for this model: both must come back together.
    assert again.score_model("small") == saved
    assert again.threshold("small") == loop.threshold("small")
    (tmp_path / "score_models.json").write_text("{broken")
    broken = await QualityLoop.open(lost, ["small", "large"], "large", 0.65)
    assert not broken.score_model("small").fitted
