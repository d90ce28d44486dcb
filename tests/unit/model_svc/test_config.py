"""Model service settings: model folder resolution, seed prices, environment for vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from model_svc.__main__ import main, overrides_from, parse_args
from model_svc.config import ModelServiceSettings
from model_svc.engines.vllm_env import apply_engine_environment
from tierroute.errors import FailedPreconditionError


def test_tier_defaults_to_the_prepared_folder(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "qwen2.5-coder-0.5b-instruct"
    folder.mkdir(parents=True)
    settings = ModelServiceSettings(tier="large", cache_dir=tmp_path)
    assert settings.model_path() == folder
    assert settings.served_name() == "qwen2.5-coder-0.5b-instruct"
    assert settings.prices_usd_per_mtok() == (0.50, 1.50)


def test_missing_prepared_model_says_how_to_prepare_it(tmp_path: Path) -> None:
    settings = ModelServiceSettings(tier="small", cache_dir=tmp_path)
    with pytest.raises(FailedPreconditionError, match="tierroute models prepare --tier small"):
        settings.model_path()


def test_unknown_tier_needs_a_model_and_prices(tmp_path: Path) -> None:
    settings = ModelServiceSettings(tier="medium", cache_dir=tmp_path)
    with pytest.raises(FailedPreconditionError, match=r"engine\.model"):
        settings.model_path()
    with pytest.raises(FailedPreconditionError, match="prices"):
        settings.prices_usd_per_mtok()
    priced = ModelServiceSettings(
        tier="medium",
        engine={"model": tmp_path / "m"},
        prices={"input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.4},
    )
    assert priced.model_path() == tmp_path / "m"
    assert priced.served_name() == "m"
    assert priced.prices_usd_per_mtok() == (0.2, 0.4)


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERROUTE_ENGINE__CPU_THREADS_BIND", "1")
    monkeypatch.setenv("TIERROUTE_PRICES__OUTPUT_USD_PER_MTOK", "9")
    monkeypatch.setenv("TIERROUTE_LIMITS__MAX_CONCURRENT_STREAMS", "3")
    settings = ModelServiceSettings.load(None, tier="small")
    assert settings.engine.cpu_threads_bind == "1"
    assert settings.prices_usd_per_mtok() == (0.05, 9.0)
    assert settings.limits.max_concurrent_streams == 3


def test_flags_override_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tier.yaml"
    config.write_text("tier: large\nserver:\n  port: 7000\n  grace_seconds: 3\n")
    monkeypatch.setenv("TIERROUTE_SERVER__METRICS_PORT", "9100")
    args = parse_args(["--config", str(config), "--port", "7001", "--model", str(tmp_path)])
    settings = ModelServiceSettings.load(args.config, **overrides_from(args))
    assert settings.tier == "large"
    assert (settings.server.port, settings.server.grace_seconds) == (7001, 3)
    assert settings.server.metrics_port == 9100
    assert settings.engine.model == tmp_path


def test_configuration_errors_exit_with_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--tier", "medium", "--port", "0"]) == 2
    assert "engine.model" in capsys.readouterr().err


def test_cpu_binding_and_kv_cache_reach_the_environment() -> None:
    settings = ModelServiceSettings(engine={"cpu_threads_bind": "0", "kv_cache_gib": 2})
    environ: dict[str, str] = {}
    apply_engine_environment(settings.engine, environ)
    assert environ["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert environ["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert environ["HF_HUB_OFFLINE"] == "1"


def test_limits_and_tier_names_are_validated() -> None:
    with pytest.raises(ValidationError, match="default_max_tokens"):
        ModelServiceSettings(limits={"max_tokens": 8, "default_max_tokens": 16})
    with pytest.raises(ValidationError, match="tier"):
        ModelServiceSettings(tier="Small Tier!")
