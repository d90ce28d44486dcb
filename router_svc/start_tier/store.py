"""Where the start-tier model persists: a small interface, a file and an in-memory store.

:class:`StartTierState` is everything a restart needs: the feature layout it was learned on,
its version and training count, the weights and the recent outcomes each refit reads. A shared
store (one model for every router pod) implements the same three methods.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from router_svc.start_tier.features import FloatArray


@dataclass
class TierSamples:
    """Recent outcomes of one cheaper tier: design rows, 1 = escalated, and their weights."""

    x: FloatArray
    y: FloatArray
    w: FloatArray | None = None
    """Inverse probability of having been observed (``None``: 1 each)."""


@dataclass
class StartTierState:
    """A persisted model."""

    signature: str
    """The feature layout (a state of another layout is not loaded)."""
    version: int
    """Refits since the model was created or reset."""
    trained: int
    """Outcomes learned from since the model was created or reset."""
    weights: dict[int, FloatArray]
    samples: dict[int, TierSamples] = field(default_factory=dict)


class StartTierStore(Protocol):
    """Loads, saves and forgets the model."""

    def load(self) -> StartTierState | None:
        """The saved state, or ``None``."""
        ...

    def save(self, state: StartTierState) -> None:
        """Replace the saved state."""
        ...

    def clear(self) -> None:
        """Forget the saved state."""
        ...


class MemoryStore:
    """Keeps the state in the process (tests; a router without ``state_path``)."""

    def __init__(self) -> None:
        self.state: StartTierState | None = None

    def load(self) -> StartTierState | None:
        """The state last saved."""
        return self.state

    def save(self, state: StartTierState) -> None:
        """Keep ``state``."""
        self.state = state

    def clear(self) -> None:
        """Drop the state."""
        self.state = None


class FileStore:
    """One ``.npz`` file, replaced atomically (a crash mid-write leaves the previous one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> StartTierState | None:
        """The state in the file, or ``None`` when there is no file."""
        if not self.path.exists():
            return None
        with np.load(self.path, allow_pickle=False) as data:
            tiers = [int(t) for t in data["tiers"]]
            state = StartTierState(
                signature=str(data["signature"]),
                version=int(data["version"]),
                trained=int(data["trained"]),
                weights={t: data[f"w{t}"] for t in tiers},
            )
            for t in tiers:
                if f"x{t}" in data:
                    weights = data.get(f"s{t}", None)
                    state.samples[t] = TierSamples(data[f"x{t}"], data[f"y{t}"], weights)
        return state

    def save(self, state: StartTierState) -> None:
        """Write ``state`` next to the file, then rename it over the file."""
        arrays: dict[str, Any] = {
            "signature": np.array(state.signature),
            "version": np.array(state.version),
            "trained": np.array(state.trained),
            "tiers": np.array(sorted(state.weights), dtype=np.int64),
        }
        for t, w in state.weights.items():
            arrays[f"w{t}"] = w
        for t, s in state.samples.items():
            arrays[f"x{t}"] = s.x
            arrays[f"y{t}"] = s.y
            if s.w is not None:
                arrays[f"s{t}"] = s.w
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(buffer.getvalue())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Delete the file."""
        self.path.unlink(missing_ok=True)
