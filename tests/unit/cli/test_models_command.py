"""``tierroute models prepare``: tier names mean the same model as in the preset that uses them."""

from __future__ import annotations

import pytest

from tierroute_tools.cli import build_parser
from tierroute_tools.commands.models import TierNameError, preset_names, selected_tiers
from tierroute_tools.platform import PRESETS


def test_code3_names_pick_the_models_code3_serves() -> None:
    # code3's `large` is Qwen2.5-Coder-1.5B (catalogue key xl), its `tiny` SmolLM2 (small).
    assert selected_tiers(["large"], "code3") == ["xl"]
    assert selected_tiers(["tiny"], "code3") == ["small"]
    assert selected_tiers(["small"], "code3") == ["large"]
    assert selected_tiers(None, "code3") == ["small", "large", "xl"]
    assert selected_tiers(["all"], "pair") == ["small", "large"]


def test_every_preset_tier_prepares_the_model_the_platform_starts() -> None:
    for preset, tiers in PRESETS.items():
        for tier in tiers:
            assert selected_tiers([tier.name], preset) == [tier.model or tier.name]


def test_catalogue_names_stay_the_default() -> None:
    assert selected_tiers(None) == ["small", "large"]
    assert selected_tiers(["xl", "small"]) == ["small", "xl"]


def test_a_name_outside_the_naming_is_refused_with_the_known_names() -> None:
    with pytest.raises(TierNameError, match=r"'tiny'.*known: small, large, xl, all"):
        selected_tiers(["tiny"])
    with pytest.raises(TierNameError, match=r"preset code3; known: tiny, small, large, all"):
        selected_tiers(["xl"], "code3")


def test_the_command_line_takes_the_preset_and_its_names() -> None:
    args = build_parser().parse_args(["models", "prepare", "--tiers", "code3", "--tier", "large"])
    assert selected_tiers(args.tier, args.tiers) == ["xl"]


def test_the_list_says_what_each_preset_calls_a_model() -> None:
    assert preset_names("xl") == "code3: large"
    assert preset_names("small") == "pair: small, code3: tiny"


def test_prepare_refuses_an_unknown_name_before_preparing_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["models", "prepare", "--tier", "tiny"])
    assert args.func(args) == 2
    assert "--tier: unknown tier 'tiny'" in capsys.readouterr().err
