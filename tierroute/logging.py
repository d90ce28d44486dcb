"""structlog set-up: JSON lines, per-call context, secrets redacted, prompt text off by default."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from tierroute.config import LoggingSettings

_SECRET_KEYS = frozenset({"authorization", "api_key", "token", "password", "secret"})
_TEXT_KEYS = frozenset({"prompt", "completion", "text", "messages"})
REDACTED = "[redacted]"


class Redactor:
    """structlog processor: secrets always redacted, prompt/completion text unless enabled."""

    def __init__(self, log_prompts: bool) -> None:
        self._log_prompts = log_prompts

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            lowered = key.lower()
            if lowered in _SECRET_KEYS or (lowered in _TEXT_KEYS and not self._log_prompts):
                event[key] = REDACTED
        return event


def configure_logging(settings: LoggingSettings, stream: Any = None) -> None:
    """Configure structlog and the standard library once, at process start."""
    level = logging.getLevelName(settings.level.upper())
    if not isinstance(level, int):
        raise ValueError(f"logging.level: unknown level {settings.level!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            Redactor(settings.log_prompts),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=stream or sys.stderr)
