"""The local platform's router configuration and the demo's totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_svc.config import RouterSettings
from tierroute.commands.up import DemoRow, _print_totals
from tierroute.platform import LOCAL_CLASSIFIER_BUDGET_MS, LocalPlatform, PlatformOptions


class _Fake:
    def __init__(self, port: int) -> None:
        self.address = f"127.0.0.1:{port}"


def _platform(tmp_path: Path, overrides: dict[str, object]) -> LocalPlatform:
    platform = LocalPlatform(PlatformOptions(run_dir=tmp_path, router_overrides=overrides))
    platform.tiers = {"small": _Fake(1), "large": _Fake(2)}  # type: ignore[dict-item]
    platform.prices = {"small": (0.05, 0.10), "large": (0.50, 1.50)}
    return platform


def test_router_config_lists_tiers_with_their_prices_and_loads(tmp_path: Path) -> None:
    config = _platform(tmp_path, {})._router_config()
    settings = RouterSettings.model_validate(config)
    assert [t.name for t in settings.tiers] == ["small", "large"]
    assert settings.tiers[1].endpoints == ["127.0.0.1:2"]
    assert settings.tiers[1].output_usd_per_mtok == 1.50
    assert settings.policy.classifier_timeout_ms == LOCAL_CLASSIFIER_BUDGET_MS


def test_overrides_merge_section_by_section(tmp_path: Path) -> None:
    config = _platform(tmp_path, {"policy": {"fallback_threshold": 0.9}})._router_config()
    policy = config["policy"]
    assert isinstance(policy, dict)
    assert policy == {
        "classifier_timeout_ms": LOCAL_CLASSIFIER_BUDGET_MS,
        "fallback_threshold": 0.9,
    }


def _row(served: str, cost: float, baseline: float, escalated: bool = False) -> DemoRow:
    tried = f"small>{served}" if escalated else served
    return DemoRow(
        "fact", "small", "classifier", served, tried, escalated, 0.8, 5, 5, cost, baseline, 0.1, "x"
    )


def test_totals_report_savings_against_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    _print_totals([_row("small", 1.0, 10.0), _row("large", 12.0, 10.0, escalated=True)])
    out = capsys.readouterr().out
    assert "escalation rate    50% (1 of 2)" in out
    assert "served by          large 50%, small 50%" in out
    assert "$7.000000 = 35.0% of the all-large cost" in out
