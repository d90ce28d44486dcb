"""Settings: frozen pydantic models read from ``TIERROUTE_*`` environment variables and YAML.

Each service defines its own :class:`Settings` subclass; :meth:`Settings.load` is the only place
that reads the environment. Precedence, highest first: explicit overrides, environment
(``TIERROUTE_SECTION__FIELD``), the YAML file (``--config`` or ``TIERROUTE_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV = "TIERROUTE_CONFIG"

MIN_SECRET_CHARS = 16
_CERT_MARK = b"-----BEGIN CERTIFICATE-----"
_KEY_MARK = b"PRIVATE KEY-----"


class Section(BaseModel):
    """Base of every nested settings section: frozen, unknown keys rejected.

    Errors never echo the input: a section's input may hold a secret (a shared secret from
    the environment), and start-up errors are printed and logged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def read_pem(path: Path, setting: str, kind: str) -> bytes:
    """The bytes of a PEM file; ``ValueError`` naming ``setting`` if unreadable or not ``kind``.

    ``kind`` is ``"certificate"`` or ``"key"``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc
    mark = _CERT_MARK if kind == "certificate" else _KEY_MARK
    if mark not in data:
        raise ValueError(f"{setting}: {path} holds no PEM {kind}")
    return data


class ServerTls(Section):
    """TLS of a listening service (``server.tls``); unset means plaintext."""

    cert_file: Path
    """PEM certificate chain the service presents (leaf first)."""
    key_file: Path
    """PEM private key of that certificate."""
    client_ca_file: Path | None = None
    """PEM CA bundle that client certificates must chain to (mutual TLS)."""
    require_client_auth: bool = False
    """Refuse connections without a valid client certificate (needs ``client_ca_file``)."""

    @model_validator(mode="after")
    def _check_files(self) -> Self:
        if self.require_client_auth and self.client_ca_file is None:
            raise ValueError("server.tls.require_client_auth needs server.tls.client_ca_file")
        read_pem(self.cert_file, "server.tls.cert_file", "certificate")
        read_pem(self.key_file, "server.tls.key_file", "key")
        if self.client_ca_file is not None:
            read_pem(self.client_ca_file, "server.tls.client_ca_file", "certificate")
        return self


class ClientTls(Section):
    """TLS of a client's channel: what it trusts and, for mutual TLS, what it presents."""

    enabled: bool = True
    """Use TLS; ``false`` turns it off (a per-tier override of a global default)."""
    ca_file: Path | None = None
    """PEM CA bundle the server's certificate must chain to; unset: the system roots."""
    cert_file: Path | None = None
    """PEM client certificate chain (mutual TLS); set together with ``key_file``."""
    key_file: Path | None = None
    """PEM private key of ``cert_file``."""
    server_name: str | None = Field(default=None, min_length=1, max_length=253)
    """Name checked against the server's certificate instead of the target's host name."""

    @model_validator(mode="after")
    def _check_files(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: cert_file and key_file go together (mutual TLS)")
        if self.ca_file is not None:
            read_pem(self.ca_file, "tls.ca_file", "certificate")
        if self.cert_file is not None and self.key_file is not None:
            read_pem(self.cert_file, "tls.cert_file", "certificate")
            read_pem(self.key_file, "tls.key_file", "key")
        return self


class SharedSecret(Section):
    """A shared secret, from a mounted file or the environment; never from the repository.

    Set ``shared_secret_file`` (a Kubernetes Secret mounted as a file) or ``shared_secret``
    (through the environment: ``TIERROUTE_<SECTION>__SHARED_SECRET``). Surrounding
    whitespace of a file (the trailing newline of ``echo``) is ignored.
    """

    shared_secret: SecretStr | None = None
    """The secret itself; prefer the environment or a file to a YAML value."""
    shared_secret_file: Path | None = None
    """File holding the secret (read at start-up)."""

    @model_validator(mode="after")
    def _check_secret(self) -> Self:
        if self.shared_secret is not None and self.shared_secret_file is not None:
            raise ValueError("set shared_secret or shared_secret_file, not both")
        self.secret()  # unreadable or too short: fail at start-up
        return self

    def secret(self) -> str | None:
        """The secret, or ``None`` when neither source is set."""
        if self.shared_secret_file is not None:
            try:
                value = self.shared_secret_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"shared_secret_file: cannot read {self.shared_secret_file}: {exc}"
                ) from exc
        elif self.shared_secret is not None:
            value = self.shared_secret.get_secret_value().strip()
        else:
            return None
        if len(value) < MIN_SECRET_CHARS:
            # The length is safe to say; the value never is.
            raise ValueError(f"shared secret: at least {MIN_SECRET_CHARS} characters required")
        return value


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
    tls: ServerTls | None = None
    """TLS (and mutual TLS) from certificate files; unset: plaintext (inside a mesh, tests)."""
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """Extra plaintext port serving only ``grpc.health.v1`` (0: any free port), for kubelet
    gRPC probes, which cannot speak TLS; ``None``: no such port. Health also stays on the
    main port."""


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
        # As in Section: the whole input (secrets included) would show in model-level errors.
        hide_input_in_errors=True,
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
