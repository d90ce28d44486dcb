"""Settings: frozen pydantic models read from ``TIERROUTE_*`` environment variables and YAML.

Each service defines its own :class:`Settings` subclass; :meth:`Settings.load` is the only place
that reads the environment. Precedence, highest first: explicit overrides, environment
(``TIERROUTE_SECTION__FIELD``), the YAML file (``--config`` or ``TIERROUTE_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV = "TIERROUTE_CONFIG"


class Section(BaseModel):
    """Base of every nested settings section: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(Section):
    """Where and how a gRPC service listens."""

    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in containers."""
    port: int = Field(default=0, ge=0, le=65535)
    """gRPC port; 0 picks a free one (printed at start)."""
    metrics_port: int | None = Field(default=0, ge=0, le=65535)
    """Prometheus ``/metrics`` port; 0 picks a free one, ``None`` disables the endpoint."""
    grace_seconds: float = Field(default=10.0, gt=0)
    """Time in-flight streams get to finish on shutdown (keep below the pod's grace period)."""
    reflection: bool = True
    """Serve gRPC server reflection (for grpcurl)."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest gRPC message accepted or sent (bytes)."""


class LoggingSettings(Section):
    """Structured logging."""

    level: str = "INFO"
    """Minimum level (DEBUG, INFO, WARNING, ERROR)."""
    json_output: bool = True
    """JSON lines (True) or a console format for humans (False)."""
    log_prompts: bool = False
    """Include prompt and completion text in logs; off by default for privacy."""


class Settings(BaseSettings):
    """Base of each service's settings; see the module docstring for sources and precedence."""

    model_config = SettingsConfigDict(
        env_prefix="TIERROUTE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Settings from ``config_file`` (or ``$TIERROUTE_CONFIG``), the environment, overrides."""
        path = config_file
        if path is None and os.environ.get(CONFIG_ENV):
            path = Path(os.environ[CONFIG_ENV])
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        config = dict(cls.model_config)
        if path is not None:
            config["yaml_file"] = str(path)
        # A subclass carries the file path, so the class itself stays free of global state.
        bound = type(cls.__name__, (cls,), {"model_config": config, "__module__": cls.__module__})
        return bound(**overrides)  # type: ignore[no-any-return]
