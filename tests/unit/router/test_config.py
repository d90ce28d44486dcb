"""Router settings: the example file, validation of the tier chain, overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from router_svc.__main__ import load_settings, parse_args
from router_svc.cascade import FallbackModeName
from router_svc.config import RouterSettings

EXAMPLE = Path(__file__).resolve().parents[3] / "router_svc" / "router.example.yaml"


def tier(name: str, price: float) -> dict[str, Any]:
    return {
        "name": name,
        "endpoints": ["127.0.0.1:1"],
        "input_usd_per_mtok": price,
        "output_usd_per_mtok": price,
    }


def test_the_example_file_is_valid_and_matches_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIERROUTE_CONFIG", raising=False)
    example = RouterSettings.load(EXAMPLE)
    defaults = RouterSettings.load()
    assert example.tiers == defaults.tiers
    assert example.policy == defaults.policy
    assert example.resilience == defaults.resilience
    assert example.tier_names == ("small", "large")


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([tier("small", 1)], "at least 2"),
        ([tier("small", 1), tier("small", 2)], "unique"),
        ([tier("large", 2), tier("small", 1)], "cheapest first"),
        ([tier("Small Tier", 1), tier("large", 2)], "pattern"),
    ],
)
def test_the_tier_chain_is_validated(tiers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RouterSettings.load(None, tiers=tiers)


def test_three_tiers_and_an_unknown_default_tier() -> None:
    chain = [tier("small", 1), tier("medium", 2), tier("large", 3)]
    assert RouterSettings.load(None, tiers=chain).tier_names == ("small", "medium", "large")
    with pytest.raises(ValidationError, match="default_tier"):
        RouterSettings.load(None, tiers=chain, policy={"default_tier": "huge"})


def test_environment_and_command_line_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERROUTE_POLICY__FALLBACK_MODE", "STREAMING")
    monkeypatch.setenv("TIERROUTE_CLASSIFIER__ENABLED", "false")
    settings = load_settings(parse_args(["--config", str(EXAMPLE), "--port", "0"]))
    assert settings.policy.fallback_mode is FallbackModeName.STREAMING
    assert settings.classifier.enabled is False
    assert settings.server.port == 0
    with pytest.raises(ValidationError):
        load_settings(parse_args(["--config", str(EXAMPLE), "--port", "70000"]))
