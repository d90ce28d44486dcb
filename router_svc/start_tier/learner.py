"""The learned start tier: decides where a request starts and learns from how it ended.

:meth:`StartTierLearner.choose` prices each tier's call (prompt length and the configured
prices), asks the :class:`~router_svc.start_tier.model.EscalationModel` for P(escalated) per
cheaper tier and starts at the tier of least expected cost (:mod:`.choice`); a share
``exploration`` of decisions starts at the cheapest tier anyway. :meth:`observe` records, for
every cheaper tier a request was served or escalated from, whether it escalated (the cascade's
label, free on every request); :meth:`observe_judged` adds a judged sample's verdict (an
unacceptable answer is one that should have escalated). Every ``refit_every`` outcomes a refit
runs in one background thread under a time cap, then the model is swapped in and saved.
Decisions and observations run on the event loop; only the refit leaves it.

Several router replicas learn one model when their outcomes are shared
(:mod:`router_svc.state.start_tier_outcomes` with the Redis state backend): after
:meth:`start_sharing`, :meth:`share` hands this replica's new outcomes over, :meth:`absorb`
adds the other replicas' ones, and every replica refits on the same outcomes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import random
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import structlog

from router_svc.start_tier.choice import start_index
from router_svc.start_tier.features import Featurizer, FloatArray
from router_svc.start_tier.metrics import StartTierMetrics
from router_svc.start_tier.model import (
    PRIOR_COLUMNS,
    EscalationModel,
    design,
    fit,
    prior_weights,
)
from router_svc.start_tier.settings import StartTierSettings
from router_svc.start_tier.store import (
    FileStore,
    MemoryStore,
    StartTierState,
    StartTierStore,
    TierSamples,
)

_log = structlog.get_logger("router_svc.start_tier")
_CHARS_PER_TOKEN = 4  # a rough prompt-token estimate: only the price ratio matters here


@dataclass(frozen=True, slots=True)
class TierPrice:
    """USD per 1M prompt and completion tokens of one tier."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """One learned outcome, as replicas exchange it: the design row of a request, which
    cheaper tier it was tried on, whether it escalated there, and its weight."""

    tier: int
    row: FloatArray
    escalated: bool
    weight: float


@dataclass(frozen=True, slots=True)
class StartChoice:
    """Where a request starts and why."""

    index: int
    """Index of the start tier, cheapest first."""
    p_escalate: tuple[float, ...]
    """The model's P(escalated) per cheaper tier."""
    explored: bool
    """Started at the cheapest tier by the exploration share."""


class StartTierLearner:
    """See the module docstring."""

    def __init__(
        self,
        tiers: Sequence[str],
        prices: Sequence[TierPrice],
        settings: StartTierSettings,
        featurizer: Featurizer,
        *,
        store: StartTierStore | None = None,
        metrics: StartTierMetrics | None = None,
        rng: random.Random | None = None,
        background: bool = True,
    ) -> None:
        if len(tiers) < 2 or len(prices) != len(tiers):
            raise ValueError("a price for each of at least two tiers")
        self._tiers = tuple(tiers)
        self._prices = tuple(prices)
        self._settings = settings
        self._featurizer = featurizer
        self._store: StartTierStore = store if store is not None else MemoryStore()
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._cheaper = len(tiers) - 1
        self._lock = threading.Lock()  # guards the sample buffers against the refit thread
        self._samples: list[collections.deque[tuple[FloatArray, float, float]]] = []
        self._model = EscalationModel.prior(featurizer.dim, self._cheaper)
        self._version = 0
        self._trained = 0
        self._since_fit = 0
        # One thread: refits never overlap and never take more than one core.
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="start-tier-fit")
            if background
            else None
        )
        self._fitting: concurrent.futures.Future[None] | None = None
        # This replica's outcomes not yet handed to the replicas it shares with (None: alone).
        self._outbox: collections.deque[Outcome] | None = None
        self._clear_samples()
        if settings.reset:
            self._store.clear()
        else:
            self._restore()
        self._publish()

    @property
    def signature(self) -> str:
        """The feature layout: replicas exchange outcomes only with the same one."""
        return self._featurizer.signature

    def start_sharing(self) -> None:
        """Keep this replica's new outcomes for :meth:`share` (at most ``max_samples`` wait)."""
        if self._outbox is None:
            self._outbox = collections.deque(maxlen=self._settings.max_samples)

    def share(self, limit: int) -> list[Outcome]:
        """This replica's outcomes since the last call, oldest first (at most ``limit``)."""
        taken: list[Outcome] = []
        while self._outbox and len(taken) < limit:
            taken.append(self._outbox.popleft())
        return taken

    def unshare(self, outcomes: Sequence[Outcome]) -> None:
        """Put back outcomes :meth:`share` gave that could not be sent (oldest first)."""
        if self._outbox is not None:
            self._outbox.extendleft(reversed(outcomes))

    def absorb(self, outcomes: Sequence[Outcome]) -> None:
        """Learn from other replicas' outcomes as from this one's (they count towards the
        next refit)."""
        added = 0
        with self._lock:
            for outcome in outcomes:
                if 0 <= outcome.tier < self._cheaper and len(outcome.row) == self._row_size:
                    self._samples[outcome.tier].append(
                        (outcome.row, 1.0 if outcome.escalated else 0.0, outcome.weight)
                    )
                    added += 1
        self._count(added)

    @property
    def capacity(self) -> int:
        """Outcomes kept for refits, over every cheaper tier."""
        return self._settings.max_samples * self._cheaper

    @property
    def _row_size(self) -> int:
        return self._featurizer.dim + PRIOR_COLUMNS  # design(): bias, prior columns, features

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tier names, cheapest first."""
        return self._tiers

    @property
    def version(self) -> int:
        """Refits since creation or reset."""
        return self._version

    @property
    def trained(self) -> int:
        """Outcomes learned from since creation or reset."""
        return self._trained

    def call_costs(self, text: str) -> list[float]:
        """The price of one call of each tier for ``text`` (USD)."""
        prompt = len(text) / _CHARS_PER_TOKEN
        out = self._settings.expected_completion_tokens
        return [(prompt * p.input_usd_per_mtok + out * p.output_usd_per_mtok) for p in self._prices]

    def choose(self, text: str, score: float | None, lowest: int = 0) -> StartChoice:
        """The start tier of ``text`` (``score``: the classifier's, its prior; ``lowest``: the
        cheapest tier allowed)."""
        row = design(self._featurizer.features(text), score)
        p = tuple(self._model.p_escalate(row))
        explored = self._rng.random() < self._settings.exploration
        index = lowest if explored else start_index(p, self.call_costs(text), lowest)
        index = max(0, min(index, len(self._tiers) - 1))
        if self._metrics is not None:
            self._metrics.decided(self._tiers[index], explored)
        return StartChoice(index, p, explored)

    def observe(
        self,
        text: str,
        score: float | None,
        tiers_tried: Sequence[str],
        escalated_from: Collection[str],
    ) -> None:
        """Learn from a finished request: each cheaper tier it tried stayed or escalated."""
        labels = [
            (self._tiers.index(t), t in escalated_from)
            for t in tiers_tried
            if t in self._tiers and t != self._tiers[-1]
        ]
        self._add(text, score, labels)

    def observe_judged(self, text: str, score: float | None, tier: str, acceptable: bool) -> None:
        """Learn from a judged answer of ``tier``: an unacceptable one should have escalated."""
        if tier in self._tiers[:-1]:
            self._add(text, score, [(self._tiers.index(tier), not acceptable)])

    def _add(self, text: str, score: float | None, labels: Sequence[tuple[int, bool]]) -> None:
        if not labels:
            return
        row = design(self._featurizer.features(text), score)
        # A tier the model would now skip was only reached by exploration: such outcomes stand
        # for the 1/exploration requests like them that were skipped (inverse-probability
        # weight), so a model that skips a region still hears, at full strength, when the
        # region stops escalating.
        chosen = start_index(self._model.p_escalate(row), self.call_costs(text))
        share = self._settings.exploration
        with self._lock:
            for index, escalated in labels:
                weight = 1.0 / share if share > 0 and index < chosen else 1.0
                self._samples[index].append((row, 1.0 if escalated else 0.0, weight))
                if self._outbox is not None:
                    self._outbox.append(Outcome(index, row, escalated, weight))
        self._count(1)

    def _count(self, outcomes: int) -> None:
        if outcomes == 0:
            return
        self._trained += outcomes
        self._since_fit += outcomes
        if self._metrics is not None:
            self._metrics.trained.set(self._trained)
        if self._since_fit >= self._settings.refit_every:
            self._since_fit = 0
            self._schedule_refit()

    def _schedule_refit(self) -> None:
        if self._pool is None:
            self.refit()
        elif self._fitting is None or self._fitting.done():
            # A refit still running will read the new outcomes next time.
            self._fitting = self._pool.submit(self.refit)

    def refit(self) -> None:
        """Fit every cheaper tier on its recent outcomes, swap the model in and save it."""
        started = time.perf_counter()
        with self._lock:
            snapshot = [list(buffer) for buffer in self._samples]
        budget = self._settings.max_fit_seconds / self._cheaper
        weights = {}
        for index, rows in enumerate(snapshot):
            prior = prior_weights(self._featurizer.dim, index)
            if not rows:
                weights[index] = prior
                continue
            x = np.stack([r for r, _, _ in rows])
            y = np.array([label for _, label, _ in rows])
            w = np.array([weight for _, _, weight in rows])
            weights[index] = fit(x, y, prior, self._settings.l2, budget, sample_weight=w).weights
        self._model = EscalationModel(self._featurizer.dim, weights)
        self._version += 1
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.fit_seconds.observe(elapsed)
        self._publish()
        self._save()

    def reset(self) -> None:
        """Forget everything learned (and the saved state): back to the prior."""
        self.wait()
        with self._lock:
            self._clear_samples()
        self._model = EscalationModel.prior(self._featurizer.dim, self._cheaper)
        self._version = 0
        self._trained = 0
        self._since_fit = 0
        self._store.clear()
        self._publish()

    def wait(self) -> None:
        """Block until a background refit in progress has finished (tests, shutdown)."""
        if self._fitting is not None:
            self._fitting.result()

    def close(self) -> None:
        """Finish the refit in progress, save, and stop the refit thread."""
        self.wait()
        self._save()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _clear_samples(self) -> None:
        self._samples = [
            collections.deque(maxlen=self._settings.max_samples) for _ in range(self._cheaper)
        ]

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.version.set(self._version)
            self._metrics.trained.set(self._trained)

    def _state(self) -> StartTierState:
        with self._lock:
            samples = {
                i: TierSamples(
                    np.stack([r for r, _, _ in buf]),
                    np.array([label for _, label, _ in buf]),
                    np.array([weight for _, _, weight in buf]),
                )
                for i, buf in enumerate(self._samples)
                if buf
            }
        model = self._model
        return StartTierState(
            signature=self._featurizer.signature,
            version=self._version,
            trained=self._trained,
            weights={i: model.weights(i) for i in model.tiers},
            samples=samples,
        )

    def _save(self) -> None:
        try:
            self._store.save(self._state())
        except OSError as exc:
            # Losing the saved model costs a warm-up, not a request: keep serving.
            _log.warning("start-tier model not saved", error=repr(exc))

    def _restore(self) -> None:
        state = self._store.load()
        if state is None:
            return
        if state.signature != self._featurizer.signature or sorted(state.weights) != list(
            range(self._cheaper)
        ):
            _log.warning(
                "saved start-tier model ignored: another feature layout or tier count",
                saved=state.signature,
                current=self._featurizer.signature,
            )
            return
        self._model = EscalationModel(self._featurizer.dim, state.weights)
        self._version = state.version
        self._trained = state.trained
        for index, samples in state.samples.items():
            if index < self._cheaper:
                weights = samples.w if samples.w is not None else np.ones(len(samples.y))
                for row, label, weight in zip(samples.x, samples.y, weights, strict=True):
                    self._samples[index].append((row, float(label), float(weight)))
        _log.info("start-tier model restored", version=self._version, trained=self._trained)


def open_learner(
    tiers: Sequence[str],
    prices: Sequence[TierPrice],
    settings: StartTierSettings,
    featurizer: Featurizer,
    metrics: StartTierMetrics | None,
) -> StartTierLearner:
    """The learner of a router: persisted to ``settings.state_path`` when set."""
    store: StartTierStore = (
        FileStore(settings.state_path) if settings.state_path is not None else MemoryStore()
    )
    return StartTierLearner(tiers, prices, settings, featurizer, store=store, metrics=metrics)
