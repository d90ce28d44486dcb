"""Settings: YAML file, environment and overrides, in that order of precedence; frozen; strict."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tierroute.config import LoggingSettings, ServerSettings, Settings


class _DemoSettings(Settings):
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    name: str = "default"


def test_defaults_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERROUTE_CONFIG", raising=False)
    settings = _DemoSettings.load()
    assert settings.name == "default"
    assert settings.server.port == 0


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: from-file\nserver:\n  port: 5000\n  grace_seconds: 3\n")
    settings = _DemoSettings.load(config)
    assert (settings.name, settings.server.port, settings.server.grace_seconds) == (
        "from-file",
        5000,
        3,
    )
    monkeypatch.setenv("TIERROUTE_SERVER__PORT", "6000")
    settings = _DemoSettings.load(config)
    assert settings.server.port == 6000
    assert settings.server.grace_seconds == 3
    assert _DemoSettings.load(config, name="override").name == "override"


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: via-env\n")
    monkeypatch.setenv("TIERROUTE_CONFIG", str(config))
    assert _DemoSettings.load().name == "via-env"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        _DemoSettings.load(tmp_path / "nope.yaml")


def test_unknown_keys_and_bad_values_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  prot: 1\n")
    with pytest.raises(ValidationError, match="prot"):
        _DemoSettings.load(config)
    with pytest.raises(ValidationError, match="grace_seconds"):
        ServerSettings(grace_seconds=0)


def test_settings_are_frozen() -> None:
    settings = _DemoSettings.load()
    with pytest.raises(ValidationError):
        settings.name = "x"  # type: ignore[misc]
