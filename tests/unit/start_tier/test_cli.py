"""``python -m router_svc.start_tier``: show and reset a persisted model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from router_svc.start_tier import (
    CheapFeatures,
    FileStore,
    StartTierLearner,
    StartTierSettings,
    TierPrice,
)
from router_svc.start_tier.__main__ import main


def test_show_then_reset_forgets_the_saved_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "start.npz"
    learner = StartTierLearner(
        ("small", "large"),
        [TierPrice(1, 1), TierPrice(10, 10)],
        StartTierSettings(enabled=True, refit_every=2),
        CheapFeatures(16),
        store=FileStore(path),
        rng=random.Random(0),
        background=False,
    )
    for _ in range(4):
        learner.observe("a prompt", None, ("small", "large"), {"small"})
    learner.close()
    assert main(["show", "--state", str(path)]) == 0
    assert "version 2, trained on 4 outcomes" in capsys.readouterr().out
    assert main(["reset", "--state", str(path)]) == 0
    assert not path.exists()
    assert main(["show", "--state", str(path)]) == 1
