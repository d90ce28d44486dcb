"""The local platform's router configuration and the demo's totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_svc.config import RouterSettings
from tierroute_tools.commands.up import DEMO_QUERIES, DemoRow, _print_totals
from tierroute_tools.platform import (
    CODE3_FALLBACK_THRESHOLD,
    LOCAL_CLASSIFIER_BUDGET_MS,
    PRESETS,
    LocalPlatform,
    PlatformOptions,
    preset_models,
    preset_router_overrides,
)


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


def test_presets_name_the_models_to_prepare() -> None:
    assert preset_models("pair") == ("small", "large")
    assert preset_models("code3") == ("small", "large", "xl")


def test_code3_router_config_is_a_cheapest_first_chain_led_by_confidence(tmp_path: Path) -> None:
    options = PlatformOptions(
        run_dir=tmp_path,
        tiers=PRESETS["code3"],
        router_overrides=preset_router_overrides("code3"),
    )
    platform = LocalPlatform(options)
    platform.tiers = {t.name: _Fake(i) for i, t in enumerate(PRESETS["code3"])}  # type: ignore[misc]
    platform.prices = {t.name: t.prices for t in PRESETS["code3"] if t.prices is not None}
    settings = RouterSettings.model_validate(platform._router_config())
    # Loading validates the order: each tier dearer than the one before it.
    assert settings.tier_names == ("tiny", "small", "large")
    assert settings.tiers[-1].output_usd_per_mtok == 1.50
    assert (settings.rules.enabled, settings.classifier.enabled) == (False, False)
    assert settings.policy.fallback_threshold == CODE3_FALLBACK_THRESHOLD
    assert settings.policy.default_tier is None  # the cheapest tier starts every request
    assert settings.policy.classifier_timeout_ms == LOCAL_CLASSIFIER_BUDGET_MS


def test_pair_needs_no_router_overrides() -> None:
    assert preset_router_overrides("pair") == {}


def test_demo_mixes_exist_for_every_preset() -> None:
    root = Path(__file__).resolve().parents[3]
    for name in PRESETS:
        lines = (root / DEMO_QUERIES[name]).read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        assert len(rows) >= 10
        assert all(row["prompt"] and row["kind"] for row in rows)
