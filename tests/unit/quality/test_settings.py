"""Quality settings: defaults and constraints."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router_svc.quality.settings import QualitySettings


def test_defaults_state_the_promise() -> None:
    s = QualitySettings()
    assert (s.target, s.delta, s.min_samples, s.start_threshold) == (0.95, 0.1, 30, None)
    assert s.pinned == {} and s.store_path is None


@pytest.mark.parametrize(
    "bad",
    [
        {"target": 0},
        {"target": 1.1},
        {"delta": 1},
        {"min_samples": 0},
        {"start_threshold": 1.5},
        {"grid_step": 0},
        {"initial_rate": 0.1, "floor_rate": 0.2},
        {"pinned": {"small": 2.0}},
        {"unknown": 1},
    ],
)
def test_invalid_values_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QualitySettings.model_validate(bad)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        QualitySettings().target = 0.5
