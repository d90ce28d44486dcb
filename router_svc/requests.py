"""Checks and reads the router's request messages (protobuf only, no gRPC).

Validation names the offending field in every :class:`InvalidArgumentError`; the routing text
(what the rules and the classifier read) is a raw prompt's text or a chat's last user message.
"""

from __future__ import annotations

from router_svc.cascade import FallbackModeName
from router_svc.config import LimitsSettings
from tierroute.errors import InvalidArgumentError
from tierroute.v1 import common_pb2, model_service_pb2, router_service_pb2

MAX_REQUEST_ID_CHARS = 128
MAX_STOP_STRINGS = 8
# Upper bound of the tokens a chat template adds per message; used for worst-case costs only.
TEMPLATE_TOKENS_PER_MESSAGE = 16

_MODES = {
    router_service_pb2.FALLBACK_MODE_BUFFERED: FallbackModeName.BUFFERED,
    router_service_pb2.FALLBACK_MODE_STREAMING: FallbackModeName.STREAMING,
    router_service_pb2.FALLBACK_MODE_EARLY_WINDOW: FallbackModeName.EARLY_WINDOW,
    router_service_pb2.FALLBACK_MODE_DISABLED: FallbackModeName.DISABLED,
}
_VALID_ROLES = frozenset({common_pb2.ROLE_SYSTEM, common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT})


def validate_prompt(prompt: common_pb2.Prompt, present: bool, limits: LimitsSettings) -> int:
    """Check a prompt; returns its size (UTF-8 bytes of all text)."""
    kind = prompt.WhichOneof("kind") if present else None
    if kind is None:
        raise InvalidArgumentError("prompt", "required: set text or chat")
    if kind == "text":
        if not prompt.text.strip():
            raise InvalidArgumentError("prompt.text", "must not be empty")
        size = len(prompt.text.encode())
    else:
        messages = prompt.chat.messages
        if not messages:
            raise InvalidArgumentError("prompt.chat.messages", "at least one message is required")
        size = 0
        for i, message in enumerate(messages):
            if message.role not in _VALID_ROLES:
                raise InvalidArgumentError(
                    f"prompt.chat.messages[{i}].role", "must be SYSTEM, USER or ASSISTANT"
                )
            if not message.content.strip():
                raise InvalidArgumentError(
                    f"prompt.chat.messages[{i}].content", "must not be empty"
                )
            size += len(message.content.encode())
        if messages[-1].role != common_pb2.ROLE_USER:
            raise InvalidArgumentError(
                f"prompt.chat.messages[{len(messages) - 1}].role",
                "the last message must be from the user",
            )
    if size > limits.max_prompt_bytes:
        raise InvalidArgumentError(
            "prompt",
            f"is {size} bytes (UTF-8); the limit of this router is {limits.max_prompt_bytes} bytes",
        )
    return size


def validate_options(options: router_service_pb2.RouteOptions) -> None:
    """Check routing options."""
    if options.fallback_mode not in _MODES and options.fallback_mode != 0:
        raise InvalidArgumentError("options.fallback_mode", f"unknown mode {options.fallback_mode}")
    if options.HasField("fallback_threshold") and not 0 <= options.fallback_threshold <= 1:
        raise InvalidArgumentError("options.fallback_threshold", "must be in [0, 1]")
    if options.HasField("max_cost_usd") and not options.max_cost_usd >= 0:
        raise InvalidArgumentError("options.max_cost_usd", "must be >= 0")


def validate_sampling(sampling: common_pb2.SamplingParams, limits: LimitsSettings) -> None:
    """Check decoding parameters against the router's limits."""
    if sampling.max_tokens > limits.max_tokens:
        raise InvalidArgumentError(
            "sampling.max_tokens",
            f"must be at most {limits.max_tokens} (0: server default); got {sampling.max_tokens}",
        )
    if sampling.HasField("temperature") and not 0 <= sampling.temperature <= 2:
        raise InvalidArgumentError("sampling.temperature", "must be in [0, 2]")
    if sampling.HasField("top_p") and not 0 < sampling.top_p <= 1:
        raise InvalidArgumentError("sampling.top_p", "must be in (0, 1]")
    if len(sampling.stop) > MAX_STOP_STRINGS:
        raise InvalidArgumentError("sampling.stop", f"at most {MAX_STOP_STRINGS} stop strings")


def validate_generate(
    request: router_service_pb2.RouterServiceGenerateRequest, limits: LimitsSettings
) -> int:
    """Check a Generate request; returns the prompt size (bytes)."""
    if not usable_request_id(request.request_id):
        raise InvalidArgumentError(
            "request_id", f"at most {MAX_REQUEST_ID_CHARS} printable ASCII characters"
        )
    size = validate_prompt(request.prompt, request.HasField("prompt"), limits)
    validate_sampling(request.sampling, limits)
    validate_options(request.options)
    return size


def usable_request_id(request_id: str) -> bool:
    """True when the id may travel in gRPC metadata (printable ASCII, at most 128 characters)."""
    return (
        len(request_id) <= MAX_REQUEST_ID_CHARS
        and request_id.isascii()
        and request_id.isprintable()
    )


def routing_text(prompt: common_pb2.Prompt) -> str:
    """The text the rules and the classifier read: the raw text, or the last user message."""
    if prompt.WhichOneof("kind") == "text":
        return prompt.text
    for message in reversed(prompt.chat.messages):
        if message.role == common_pb2.ROLE_USER:
            return message.content
    return ""


def fallback_mode(
    options: router_service_pb2.RouteOptions, default: FallbackModeName
) -> FallbackModeName:
    """The request's cascade mode, or the server default when unspecified."""
    return _MODES.get(options.fallback_mode, default)


def worst_case_tokens(
    prompt: common_pb2.Prompt, prompt_bytes: int, max_tokens: int
) -> tuple[int, int]:
    """Upper bounds of (prompt, completion) tokens: a BPE token covers at least one byte."""
    messages = len(prompt.chat.messages) if prompt.WhichOneof("kind") == "chat" else 0
    return prompt_bytes + TEMPLATE_TOKENS_PER_MESSAGE * messages, max_tokens


def tier_request(
    request: router_service_pb2.RouterServiceGenerateRequest, request_id: str
) -> model_service_pb2.GenerateRequest:
    """The model service request for a routed Generate call."""
    return model_service_pb2.GenerateRequest(
        prompt=request.prompt, sampling=request.sampling, request_id=request_id
    )
