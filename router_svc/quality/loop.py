"""The quality loop: the one object the router talks to about judged quality.

It ties the parts together for the router's three moments:

- **every finished request** a cheaper tier answered (served or escalated):
  :meth:`QualityLoop.should_sample` says whether to shadow and judge it, with the probability
  that becomes the sample's weight;
- **every escalation decision**: :meth:`QualityLoop.escalation_score` and
  :meth:`QualityLoop.threshold` (escalate when the score is below the threshold);
- **every judged sample**: :meth:`QualityLoop.record` stores and counts it and, once enough new
  samples of a tier arrived (``refit_every``, or a tenth of what the tier holds when that is
  fewer, but at least :data:`EARLY_REFIT_MIN`: early evidence moves the fit most), refits that
  tier's score model and recomputes its threshold (:meth:`QualityLoop.recompute`), returning
  the threshold change to log;
- **periodically**: :meth:`QualityLoop.report` exports the served quality and savings.

No gRPC; the only I/O is the store's and the state file's, both awaited.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import structlog

from router_svc.quality.controller import ThresholdChange, ThresholdController
from router_svc.quality.escalation_score import ScoreModel, out_of_fold_scores
from router_svc.quality.metrics import QualityMetrics
from router_svc.quality.monitor import CostTotals, QualityMonitor, QualityReport
from router_svc.quality.samples import (
    InProcessSampleStore,
    JudgedSample,
    SampleStore,
    atomic_write_text,
)
from router_svc.quality.sampling import AdaptiveSampler, SamplingDecision
from router_svc.quality.settings import QualitySettings

_log = structlog.get_logger("router_svc.quality.loop")
MODELS_VERSION = 1


EARLY_REFIT_MIN = 10
"""Fewest new samples between two refits of a tier's score model and threshold."""


class QualityLoop:
    """Samples, judged evidence, score models and thresholds of every cheaper tier."""

    def __init__(
        self,
        settings: QualitySettings,
        tiers: Iterable[str],
        store: SampleStore,
        controller: ThresholdController,
        sampler: AdaptiveSampler,
        monitor: QualityMonitor,
        metrics: QualityMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._tiers = tuple(tiers)
        self._store = store
        self._controller = controller
        self._sampler = sampler
        self._monitor = monitor
        self._metrics = metrics
        template = ScoreModel(
            min_samples=settings.score_min_samples,
            l2=settings.score_l2,
            isotonic=settings.score_isotonic,
        )
        self._models: dict[str, ScoreModel] = dict.fromkeys(self._tiers, template)
        self._since_refit: Counter[str] = Counter()

    @classmethod
    async def open(
        cls,
        settings: QualitySettings,
        tiers: Iterable[str],
        largest: str,
        fallback_threshold: float,
        metrics: QualityMetrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        store: SampleStore | None = None,
    ) -> QualityLoop:
        """A loop over ``store`` (the in-process store when None), with saved samples and
        thresholds reloaded and every tier's score model refitted from them.

        ``tiers`` are the cheaper tiers (never ``largest``); ``fallback_threshold`` is the
        policy's, the start value unless ``settings.start_threshold`` is set. A shared store
        (every replica's samples) makes the replicas refit the same score models and certify
        the same thresholds from the same evidence.
        """
        cheaper = [t for t in tiers if t != largest]
        if store is None:
            store = await InProcessSampleStore.open(settings.store_capacity, settings.store_path)
        controller = ThresholdController.from_settings(settings, cheaper, fallback_threshold, clock)
        await controller.load()
        loop = cls(
            settings,
            cheaper,
            store,
            controller,
            AdaptiveSampler.from_settings(settings, rng),
            QualityMonitor(largest, settings.target, settings.delta),
            metrics,
        )
        await loop._load_models()
        for tier in cheaper:
            change = await loop.recompute(tier)
            if change is not None:
                _log_change(change)
        if metrics is not None:
            metrics.record_thresholds(controller.states())
        return loop

    @property
    def controller(self) -> ThresholdController:
        """The threshold controller (for pins and state)."""
        return self._controller

    def score_model(self, tier: str) -> ScoreModel:
        """The score model in force for ``tier``."""
        return self._models[tier]

    def escalation_score(self, tier: str, features: Mapping[str, float]) -> float:
        """The score of ``tier``'s answer with these ``features`` (compare with the threshold)."""
        return self._models[tier].score(features)

    def threshold(self, tier: str) -> float:
        """The escalation threshold in force for ``tier``."""
        return self._controller.threshold(tier)

    async def should_sample(self, tier: str, escalated: bool) -> SamplingDecision:
        """Whether to shadow and judge a finished request ``tier`` answered first."""
        if tier not in self._models:
            return SamplingDecision(False, 0.0)
        return self._sampler.decide(await self._store.count(tier), escalated)

    async def record(self, sample: JudgedSample) -> ThresholdChange | None:
        """Keep a judged sample; refit and recompute its tier when enough new ones arrived."""
        await self._store.add(sample)
        if self._metrics is not None:
            self._metrics.record_sample(sample)
        if sample.tier not in self._models:
            return None
        self._since_refit[sample.tier] += 1
        if self._since_refit[sample.tier] < self._refit_due(await self._store.count(sample.tier)):
            return None
        change = await self.recompute(sample.tier)
        if change is not None:
            _log_change(change)
        return change

    def _refit_due(self, held: int) -> int:
        """New samples between refits for a tier holding ``held``: a tenth of them (at least
        :data:`EARLY_REFIT_MIN`) while that is under ``refit_every``."""
        return min(self._settings.refit_every, max(EARLY_REFIT_MIN, held // 10))

    async def samples(self) -> list[JudgedSample]:
        """Every held sample, oldest first."""
        return await self._store.recent(self._settings.store_capacity)

    async def discard(self, request_id: str, judge: str) -> bool:
        """Forget ``request_id``'s judgment by ``judge`` (feedback sent again replaces it)."""
        return await self._store.discard(request_id, judge)

    def record_undecided(
        self, tier: str, judge: str, shadow_cost_usd: float, judge_cost_usd: float
    ) -> None:
        """Count a judgment that reached no verdict (its costs were spent all the same)."""
        if self._metrics is not None:
            self._metrics.record_judgment(tier, judge, "undecided", shadow_cost_usd, judge_cost_usd)

    async def recompute(self, tier: str) -> ThresholdChange | None:
        """Refit ``tier``'s score model on its recent samples and recompute its threshold."""
        self._since_refit[tier] = 0
        samples = await self._store.recent(self._settings.window, tier)
        # Tens of milliseconds of numpy for a few thousand samples: off the event loop.
        model, scores = await asyncio.to_thread(_refit, self._models[tier], samples)
        change = self._controller.update(tier, samples, scores)
        self._models[tier] = model
        if self._metrics is not None:
            self._metrics.record_thresholds(self._controller.states())
        return change

    def pin(self, tier: str, value: float) -> ThresholdChange | None:
        """Pin ``tier``'s threshold (operator action)."""
        return self._exported(self._controller.pin(tier, value))

    def unpin(self, tier: str) -> ThresholdChange | None:
        """Unpin ``tier``'s threshold (operator action)."""
        return self._exported(self._controller.unpin(tier))

    def _exported(self, change: ThresholdChange | None) -> ThresholdChange | None:
        if change is not None:
            _log_change(change)
        if self._metrics is not None:
            self._metrics.record_thresholds(self._controller.states())
        return change

    async def report(
        self, direct_largest_share: float = 0.0, traffic: CostTotals | None = None
    ) -> QualityReport:
        """The quality report over the held samples, exported to the metrics."""
        samples = await self._store.recent(self._settings.store_capacity)
        report = self._monitor.report(
            samples, direct_largest_share=direct_largest_share, traffic=traffic
        )
        if self._metrics is not None:
            self._metrics.record_report(report)
        return report

    async def close(self) -> None:
        """Save the thresholds, the score models and the samples."""
        await self._controller.save()
        await self._save_models()
        await self._store.close()

    async def _save_models(self) -> None:
        path = self._settings.score_model_path
        if path is None:
            return
        document = {tier: model.to_json() for tier, model in self._models.items()}
        text = json.dumps({"version": MODELS_VERSION, "models": document}, sort_keys=True)
        await asyncio.to_thread(atomic_write_text, path, text + "\n")

    async def _load_models(self) -> None:
        path = self._settings.score_model_path
        if path is None:
            return
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            document = json.loads(text)
            if document["version"] != MODELS_VERSION:
                raise ValueError("unknown score model file version")
            models = {str(t): ScoreModel.from_json(m) for t, m in document["models"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            # Refitting from the samples recovers the models; log and go on.
            _log.warning("score_models_ignored", path=str(path), error=str(exc))
            return
        for tier, model in models.items():
            if tier in self._models:
                # Keep today's settings; take the saved fit.
                current = self._models[tier]
                self._models[tier] = replace(
                    model,
                    min_samples=current.min_samples,
                    l2=current.l2,
                    isotonic=current.isotonic,
                )


def _refit(model: ScoreModel, samples: list[JudgedSample]) -> tuple[ScoreModel, list[float] | None]:
    """The refitted model and the scores to certify its threshold on."""
    refitted = model.refit(samples)
    # Certify on out-of-fold scores of the model the router will use; until a model is fitted
    # the router uses the prior, which is what the samples recorded.
    return refitted, out_of_fold_scores(refitted, samples) if refitted.fitted else None


def _log_change(change: ThresholdChange) -> None:
    _log.info(
        "escalation_threshold_changed",
        tier=change.tier,
        old=change.old,
        new=change.new,
        cause=change.cause,
        evidence=change.evidence,
        reason=change.reason,
    )
