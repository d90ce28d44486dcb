"""The threshold controller: per cheaper tier, the escalation threshold in force and why.

Each cheaper tier starts at its start value (1.0, escalate everything, by default: conservative
while there is no evidence; or the configured or offline-fitted threshold) and stays there
until it holds ``min_samples`` judged samples. From then on every :meth:`update`
recomputes the threshold with Learn-then-Test (:mod:`.ltt`): the lowest threshold whose loss
against all-largest is within ``1 - target`` with confidence ``1 - delta``, which is the one
that saves most. An operator pin overrides the computed value until unpinned (the computation
goes on underneath, so unpinning returns to what the evidence supports). The state — the
threshold in force, its evidence, its last change, the pin — is saved to a JSON file and
loaded on start; pins from the configuration win over saved ones.

Pure and cheap: :meth:`update` does no I/O and returns a :class:`ThresholdChange` for the
caller to log and count; the caller decides when to recompute and when to :meth:`save`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from router_svc.quality.ltt import ESCALATE_ALL, LttResult, choose_threshold
from router_svc.quality.samples import JudgedSample, atomic_write_text
from router_svc.quality.settings import QualitySettings

_log = structlog.get_logger("router_svc.quality.controller")
STATE_VERSION = 1

__all__ = [
    "ESCALATE_ALL",
    "LttResult",
    "ThresholdChange",
    "ThresholdController",
    "TierThreshold",
    "choose_threshold",
]


@dataclass(frozen=True)
class TierThreshold:
    """A cheaper tier's escalation threshold and the evidence behind it."""

    tier: str
    threshold: float
    """In force: the request stays on the tier when its score is >= this."""
    computed: float
    """What the evidence supports (in force unless pinned)."""
    evidence: int
    """Judged samples of the tier behind ``computed``."""
    effective_samples: float
    reason: str
    """``start`` (too few samples), or the Learn-then-Test reason (see :class:`LttResult`)."""
    pinned: bool
    last_change: float | None
    """When ``threshold`` last changed (unix seconds); None if never."""

    @property
    def certified(self) -> bool:
        """Whether ``computed`` carries the ``1 - delta`` guarantee."""
        return self.reason == "certified"


@dataclass(frozen=True)
class ThresholdChange:
    """The threshold in force moved: for the caller's log event and metrics."""

    tier: str
    old: float
    new: float
    cause: str
    """``evidence``, ``pin`` or ``unpin``."""
    evidence: int
    reason: str
    time: float


class ThresholdController:
    """Holds and recomputes the escalation threshold of every cheaper tier."""

    def __init__(
        self,
        tiers: Iterable[str],
        start: float | Mapping[str, float],
        *,
        target: float = 0.95,
        delta: float = 0.1,
        min_samples: int = 30,
        grid_step: float = 0.01,
        pinned: Mapping[str, float] | None = None,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 < target <= 1.0 or not 0.0 < delta < 1.0:
            raise ValueError("need 0 < target <= 1 and 0 < delta < 1")
        self._target = target
        self._delta = delta
        self._min_samples = max(1, min_samples)
        self._grid_step = grid_step
        self._state_path = state_path
        self._clock = clock
        self._config_pins = dict(pinned or {})
        self._states: dict[str, TierThreshold] = {}
        for tier in tiers:
            value = start if isinstance(start, float | int) else start[tier]
            _check_threshold(float(value))
            self._states[tier] = TierThreshold(
                tier, float(value), float(value), 0, 0.0, "start", False, None
            )
        for tier, value in self._config_pins.items():
            if tier not in self._states:
                _log.warning("threshold_pin_ignored", tier=tier, reason="not a cheaper tier")
            self._apply_pin(tier, value)

    @classmethod
    def from_settings(
        cls,
        settings: QualitySettings,
        tiers: Iterable[str],
        fallback_threshold: float,
        clock: Callable[[], float] = time.time,
    ) -> ThresholdController:
        """A controller configured by ``settings``: with ``warmup: escalate`` every tier starts
        at 1.0 (escalate all: conservative while there is no evidence); with ``warmup: start``
        at ``start_threshold``, defaulting to the policy's ``fallback_threshold``."""
        if settings.warmup == "escalate":
            start = ESCALATE_ALL
        elif settings.start_threshold is None:
            start = fallback_threshold
        else:
            start = settings.start_threshold
        return cls(
            tiers,
            start,
            target=settings.target,
            delta=settings.delta,
            min_samples=settings.min_samples,
            grid_step=settings.grid_step,
            pinned=settings.pinned,
            state_path=settings.state_path,
            clock=clock,
        )

    @property
    def target(self) -> float:
        """The quality ratio the thresholds hold."""
        return self._target

    def tiers(self) -> list[str]:
        """The cheaper tiers under control."""
        return list(self._states)

    def threshold(self, tier: str) -> float:
        """The threshold in force for ``tier`` (``KeyError`` if not a controlled tier)."""
        return self._states[tier].threshold

    def state(self, tier: str) -> TierThreshold:
        """The full state of ``tier``."""
        return self._states[tier]

    def states(self) -> Mapping[str, TierThreshold]:
        """Every tier's state (a copy)."""
        return dict(self._states)

    def update(
        self, tier: str, samples: Sequence[JudgedSample], scores: Sequence[float] | None = None
    ) -> ThresholdChange | None:
        """Recompute ``tier``'s threshold from its judged ``samples``; the change, if any.

        ``samples`` of other tiers are ignored. ``scores`` (aligned with ``samples``) replace
        the recorded ones: after a refit the router scores with a new model, and the threshold
        must be certified on that model's scores (out-of-fold ones, so the certificate is not
        fooled by the fit).
        """
        if scores is not None and len(scores) != len(samples):
            raise ValueError("scores and samples differ in length")
        old = self._states[tier]
        picked = [
            (s, s.score if scores is None else scores[i])
            for i, s in enumerate(samples)
            if s.tier == tier
        ]
        if len(picked) < self._min_samples:
            # Too few samples: never move, only record how much evidence there is.
            self._states[tier] = replace(old, evidence=len(picked))
            return None
        result = choose_threshold(
            [score for _, score in picked],
            [s.acceptable for s, _ in picked],
            [s.sample_weight for s, _ in picked],
            target=self._target,
            delta=self._delta,
            grid_step=self._grid_step,
            fallback=old.computed,
        )
        new = replace(
            old,
            computed=result.threshold,
            evidence=result.evidence,
            effective_samples=result.effective_samples,
            reason=result.reason,
        )
        if not old.pinned:
            new = replace(new, threshold=result.threshold)
        return self._commit(old, new, "evidence")

    def pin(self, tier: str, value: float) -> ThresholdChange | None:
        """Force ``tier``'s threshold to ``value`` until :meth:`unpin`."""
        _check_threshold(value)
        old = self._states[tier]
        return self._commit(old, replace(old, threshold=value, pinned=True), "pin")

    def unpin(self, tier: str) -> ThresholdChange | None:
        """Return ``tier`` to the threshold the evidence supports."""
        old = self._states[tier]
        return self._commit(old, replace(old, threshold=old.computed, pinned=False), "unpin")

    def _apply_pin(self, tier: str, value: float) -> None:
        if tier in self._states:
            _check_threshold(value)
            self._states[tier] = replace(self._states[tier], threshold=value, pinned=True)

    def _commit(self, old: TierThreshold, new: TierThreshold, cause: str) -> ThresholdChange | None:
        if new.threshold == old.threshold:
            self._states[old.tier] = new
            return None
        now = self._clock()
        self._states[old.tier] = replace(new, last_change=now)
        return ThresholdChange(
            old.tier, old.threshold, new.threshold, cause, new.evidence, new.reason, now
        )

    async def save(self) -> None:
        """Write every tier's state to the state file (atomically), if one is configured."""
        if self._state_path is None:
            return
        document = {
            "version": STATE_VERSION,
            "tiers": {tier: asdict(state) for tier, state in self._states.items()},
        }
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        path = self._state_path
        await asyncio.to_thread(atomic_write_text, path, text)

    async def load(self) -> None:
        """Restore the saved state of the configured tiers; a bad file is logged and ignored."""
        if self._state_path is None:
            return
        try:
            text = await asyncio.to_thread(self._state_path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            restored = _parse_state(text)
        except (ValueError, KeyError, TypeError) as exc:
            # Losing the saved state costs warm-up time, not correctness: start values hold.
            _log.warning("threshold_state_ignored", path=str(self._state_path), error=str(exc))
            return
        for tier, state in restored.items():
            if tier in self._states:
                self._states[tier] = replace(state, tier=tier)
        for tier, value in self._config_pins.items():
            self._apply_pin(tier, value)


def _check_threshold(value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= ESCALATE_ALL):
        raise ValueError(f"a threshold is in [0, 1], got {value!r}")


def _parse_state(text: str) -> dict[str, TierThreshold]:
    document: Any = json.loads(text)
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise ValueError("unknown state file version")
    tiers = document["tiers"]
    if not isinstance(tiers, dict):
        raise ValueError("tiers must be an object")
    restored: dict[str, TierThreshold] = {}
    for tier, raw in tiers.items():
        last = raw["last_change"]
        state = TierThreshold(
            tier=str(tier),
            threshold=float(raw["threshold"]),
            computed=float(raw["computed"]),
            evidence=int(raw["evidence"]),
            effective_samples=float(raw["effective_samples"]),
            reason=str(raw["reason"]),
            pinned=bool(raw["pinned"]),
            last_change=None if last is None else float(last),
        )
        _check_threshold(state.threshold)
        _check_threshold(state.computed)
        restored[str(tier)] = state
    return restored
