"""Domain errors become gRPC statuses with typed details; logs redact secrets and prompt text."""

from __future__ import annotations

import io
import json

from google.rpc import code_pb2, error_details_pb2

from tierroute.config import LoggingSettings
from tierroute.errors import InvalidArgumentError, OverloadedError, UnavailableError
from tierroute.logging import REDACTED, configure_logging
from tierroute.status import to_rpc_status


def test_invalid_argument_names_the_field() -> None:
    status = to_rpc_status(InvalidArgumentError("sampling.max_tokens", "must be <= 512, got 9000"))
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "sampling.max_tokens" in status.message
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "sampling.max_tokens"


def test_overload_carries_retry_info() -> None:
    status = to_rpc_status(OverloadedError("too many streams", retry_after_seconds=1.5))
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    info = error_details_pb2.RetryInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)


def test_error_info_says_if_retryable() -> None:
    status = to_rpc_status(UnavailableError("engine dead"))
    assert status.code == code_pb2.UNAVAILABLE
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert info.metadata["retryable"] == "true"
    assert info.reason == "UnavailableError"


def test_logs_are_json_and_redacted() -> None:
    import structlog

    stream = io.StringIO()
    configure_logging(LoggingSettings(), stream=stream)
    structlog.get_logger("t").info(
        "call", prompt="secret question", authorization="Bearer k", tier="small"
    )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["prompt"] == REDACTED
    assert line["authorization"] == REDACTED
    assert line["tier"] == "small"
    assert line["event"] == "call"


def test_prompt_text_logged_only_when_enabled() -> None:
    import structlog

    stream = io.StringIO()
    configure_logging(LoggingSettings(log_prompts=True), stream=stream)
    structlog.get_logger("t").info("call", prompt="hello", api_key="k")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["prompt"] == "hello"
    assert line["api_key"] == REDACTED
