"""Choose the routing threshold for a target, on the validation split only.

Targets:
- ``cost_reduction``: the largest share of strong calls whose cost reduction is still at least
  the target (a weak call costing ``weak_cost_ratio`` of a strong one; 0 = RouteLLM's
  convention, where cost reduction is the share of calls kept off the strong model).
- ``quality``: the fewest strong calls whose quality reaches ``value x`` the strong model's
  quality (e.g. 0.95).

The card then records what that threshold does on validation (where it was chosen) and on test
(held out: the honest estimate), next to random routing with the same strong-call share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tierroute import routing_metrics

TargetKind = Literal["cost_reduction", "quality"]
TABLE_SHARES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TABLE_QUALITIES: tuple[float, ...] = (0.9, 0.925, 0.95, 0.975, 0.99)


@dataclass(frozen=True)
class Target:
    """What the threshold must achieve on validation."""

    kind: TargetKind
    value: float
    weak_cost_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.value <= 1.0:
            raise ValueError(f"target {self.kind} must be in (0, 1], got {self.value}")
        if not 0.0 <= self.weak_cost_ratio < 1.0:
            raise ValueError("weak_cost_ratio must be in [0, 1)")
        if self.kind == "cost_reduction" and self.value > 1.0 - self.weak_cost_ratio:
            raise ValueError("cost reduction target above what all-weak routing saves")

    def to_json(self) -> dict[str, Any]:
        """For the card."""
        return {"kind": self.kind, "value": self.value, "weak_cost_ratio": self.weak_cost_ratio}


@dataclass(frozen=True)
class Scored:
    """Scores and per-prompt qualities of one split."""

    scores: npt.NDArray[np.float32]
    weak: npt.NDArray[np.float64]
    strong: npt.NDArray[np.float64]


def choose_threshold(validation: Scored, target: Target) -> float:
    """The threshold meeting ``target`` on the validation split (see the module docstring)."""
    curve = routing_metrics.routing_curve(validation.scores, validation.weak, validation.strong)
    if target.kind == "cost_reduction":
        max_share = 1.0 - target.value / (1.0 - target.weak_cost_ratio)
        return routing_metrics.threshold_for_share(curve, max_share)
    return routing_metrics.threshold_for_quality(curve, target.value * curve.strong_quality)


def threshold_table(validation: Scored, weak_cost_ratio: float = 0.0) -> list[dict[str, Any]]:
    """Operating points on validation for a ladder of strong-call shares and quality targets."""
    rows = []
    targets = [Target("cost_reduction", round(1.0 - share, 6)) for share in TABLE_SHARES]
    targets += [Target("quality", quality) for quality in TABLE_QUALITIES]
    for target in targets:
        threshold = choose_threshold(validation, target)
        point = routing_metrics.operating_point(
            validation.scores, validation.weak, validation.strong, threshold, weak_cost_ratio
        )
        rows.append({"target": target.to_json(), **point.as_dict()})
    return rows


def calibration(validation: Scored, test: Scored | None, target: Target) -> dict[str, Any]:
    """The card's ``calibration`` section: target, threshold, validation and test results."""
    threshold = choose_threshold(validation, target)
    section: dict[str, Any] = {"target": target.to_json(), "threshold": threshold}
    for name, split in (("validation", validation), ("test", test)):
        if split is None:
            continue
        point = routing_metrics.operating_point(
            split.scores, split.weak, split.strong, threshold, target.weak_cost_ratio
        )
        section[name] = point.as_dict()
    return section
