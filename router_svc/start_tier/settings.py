"""Settings of the learned start tier (``start_tier`` in the router's configuration)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tierroute.config import Section


class StartTierSettings(Section):
    """Where a request starts when no hint or rule decides: learned from the cascade."""

    enabled: bool = False
    """Let the learned model choose the start tier (the classifier's score becomes its prior);
    off: the classifier's threshold splits cheapest and largest as before."""
    exploration: float = Field(default=0.05, ge=0, le=1)
    """Share of learned decisions that start at the cheapest tier anyway, so the model keeps
    seeing what the cheaper tiers would have done."""
    refit_every: int = Field(default=20, ge=1)
    """Outcomes between two background refits."""
    max_fit_seconds: float = Field(default=0.2, gt=0, le=10)
    """CPU time cap of one refit (seconds); an unfinished fit keeps its best iterate."""
    max_samples: int = Field(default=2000, ge=10, le=100_000)
    """Most recent outcomes kept per tier for refits (older ones are forgotten)."""
    l2: float = Field(default=1.0, gt=0)
    """Strength of the pull towards the prior (the classifier's opinion) in each refit."""
    embedding: bool = True
    """Add the static encoder's prompt embedding to the features when its artefact is there
    (``classifier.static_dir``); without it the cheap features alone are used."""
    hash_buckets: int = Field(default=256, ge=16, le=4096)
    """Hashed word features of the cheap featuriser."""
    expected_completion_tokens: int = Field(default=256, ge=1)
    """Completion length assumed when pricing a call (tokens); prompts are priced by length."""
    share_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """With the Redis state backend: how often this replica sends its outcomes to the shared
    stream and absorbs the other replicas' (every replica then refits on the same outcomes)."""
    state_path: Path | None = None
    """File the model persists to (loaded at start, written after each refit and at close);
    ``None``: in memory only."""
    reset: bool = False
    """Forget the persisted model at start (a fresh model with only its prior)."""
