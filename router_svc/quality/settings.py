"""Settings of the quality loop: the promise, the evidence it needs, sampling, storage, pins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tierroute.config import Section

Threshold = Annotated[float, Field(ge=0, le=1)]


class QualitySettings(Section):
    """Judged samples, the quality monitor, the threshold controller and the learned score."""

    enabled: bool = False
    """Run the quality loop in the router: judged shadow samples, the learned escalation score
    and the controlled thresholds. Off: the router escalates on the model's confidence against
    ``policy.fallback_threshold`` and shadows as ``shadow.sample_rate`` says, as before."""
    state_dir: Path | None = None
    """Directory of the loop's files when their own paths are unset: ``samples.jsonl``,
    ``thresholds.json`` and ``score_models.json``. Unset with no paths: nothing is persisted
    (the loop starts from nothing on every start)."""
    target: float = Field(default=0.95, gt=0, le=1)
    """Quality ratio promised, relative to serving everything on the largest tier."""
    delta: float = Field(default=0.1, gt=0, lt=1)
    """Risk: the promise holds with confidence ``1 - delta``."""
    min_samples: int = Field(default=30, ge=1)
    """Judged samples a tier needs before its threshold moves from the start value."""
    warmup: Literal["escalate", "start"] = "escalate"
    """The threshold before the evidence can certify one. ``escalate``: 1.0, every answer of
    the tier escalates (the promise holds from the first request; both tiers are paid until
    the evidence certifies a lower threshold). ``start``: ``start_threshold`` (cheaper at once,
    unproven: the offline threshold's quality on this traffic is unknown)."""
    start_threshold: float | None = Field(default=None, ge=0, le=1)
    """Threshold before evidence with ``warmup: start`` (e.g. the offline fit); None: the
    policy's fallback threshold."""
    grid_step: float = Field(default=0.01, gt=0, le=0.5)
    """Spacing of the candidate thresholds tested from 1 downwards."""
    refit_every: int = Field(default=50, ge=1)
    """New judged samples of a tier between refits of its score model and threshold (sooner
    while the tier holds few: a tenth of what it holds, at least 10)."""
    window: int = Field(default=2000, ge=1)
    """Most recent samples of a tier the controller and the score model learn from."""
    store_path: Path | None = None
    """JSON Lines file the samples are saved to on shutdown and loaded from on start."""
    store_capacity: int = Field(default=20000, ge=1)
    """Samples kept in memory (all tiers); the oldest are dropped beyond it."""
    state_path: Path | None = None
    """JSON file the controller's state (thresholds, evidence, pins) is saved to."""
    score_model_path: Path | None = None
    """JSON file the learned score models are saved to: a saved threshold only means something
    with the score model it was certified for (keep it with ``state_path``)."""
    initial_rate: float = Field(default=0.2, ge=0, le=1)
    """Share of cheaper-served requests shadowed while a tier has fewer than ``min_samples``."""
    floor_rate: float = Field(default=0.01, ge=0, le=1)
    """Lowest sampling rate, however much evidence there is (traffic drifts)."""
    escalated_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of escalated requests judged (flat). They are judged against the answer the
    largest tier already served, with no shadow call, and they are the evidence that lets the
    threshold come down from a conservative warm-up; lower it when judging itself is costly
    (the ``llm`` judge asks the largest tier a question per sample)."""
    score_min_samples: int = Field(default=10, ge=1)
    """Samples of each class (acceptable, not) before the learned score replaces the prior.
    Few are enough to start: a threshold is certified on the model's cross-fitted scores, so
    an early, noisy model costs savings (a higher threshold), not the quality guarantee."""
    score_l2: float = Field(default=1.0, gt=0)
    """L2 penalty of the learned score's logistic regression (standardised features)."""
    score_isotonic: bool = False
    """Recalibrate the learned score by isotonic regression."""
    report_interval_seconds: float = Field(default=15.0, ge=0)
    """How often the router recomputes the quality report (and its metrics); 0: only on
    ``GetQuality``."""
    recent_requests: int = Field(default=10000, ge=1)
    """Finished requests the router remembers for caller feedback (the oldest are forgotten:
    feedback on them is NOT_FOUND)."""
    pinned: dict[str, Threshold] = Field(default_factory=dict)
    """Operator-pinned thresholds by tier; they win over the controller and saved pins."""

    def resolved(self) -> QualitySettings:
        """These settings with every unset file path placed in ``state_dir`` (if set)."""
        if self.state_dir is None:
            return self
        names = {
            "store_path": "samples.jsonl",
            "state_path": "thresholds.json",
            "score_model_path": "score_models.json",
        }
        update = {
            key: self.state_dir / name for key, name in names.items() if getattr(self, key) is None
        }
        return self.model_copy(update=update)

    @model_validator(mode="after")
    def _rates_ordered(self) -> QualitySettings:
        if self.floor_rate > self.initial_rate:
            raise ValueError("floor_rate must not exceed initial_rate")
        return self
