"""OpenAI request bodies to ``RouterService.Generate`` requests (no HTTP, no gRPC calls).

Supported fields are translated; fields the router cannot honour are refused with a 400 naming
the parameter, unless they carry their neutral value (``n: 1``, ``logprobs: false``, ...), so a
caller never silently gets something other than it asked for. Routing options travel in the
extension object ``tierroute`` (``extra_body={"tierroute": {...}}`` with the ``openai`` client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai_gateway.errors import ApiError, invalid
from tierroute.v1 import common_pb2, router_service_pb2

ROLES: dict[str, common_pb2.Role] = {
    "system": common_pb2.ROLE_SYSTEM,
    # OpenAI's newer name for system instructions.
    "developer": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}
FALLBACK_MODES: dict[str, router_service_pb2.FallbackMode] = {
    "buffered": router_service_pb2.FALLBACK_MODE_BUFFERED,
    "streaming": router_service_pb2.FALLBACK_MODE_STREAMING,
    "early_window": router_service_pb2.FALLBACK_MODE_EARLY_WINDOW,
    "disabled": router_service_pb2.FALLBACK_MODE_DISABLED,
}
MAX_STOP = 8

# Accepted and ignored: they change nothing about the answer.
_IGNORED = frozenset({"user", "store", "metadata", "service_tier", "stream_options"})
_COMMON = frozenset(
    {"model", "stream", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "tierroute"}
)
CHAT_FIELDS = _COMMON | {"messages", "max_completion_tokens"}
COMPLETION_FIELDS = _COMMON | {"prompt"}
_EXTENSION_FIELDS = frozenset({"fallback_mode", "fallback_threshold", "max_cost_usd"})


@dataclass(frozen=True)
class Defaults:
    """Values used when a request leaves a field out."""

    max_tokens: int
    fallback_mode: str


@dataclass(frozen=True)
class ParsedRequest:
    """A translated request: the router's request plus what shapes the HTTP response."""

    model: str
    stream: bool
    include_usage: bool
    generate: router_service_pb2.RouterServiceGenerateRequest


def _reject_unsupported(body: dict[str, Any], supported: frozenset[str]) -> None:
    for key, value in body.items():
        if key in supported or key in _IGNORED:
            continue
        if key == "response_format" and isinstance(value, dict) and value.get("type") == "text":
            continue
        if value is None or value is False or value == [] or value == {}:
            continue
        if key in ("presence_penalty", "frequency_penalty") and value == 0:
            continue
        if key == "best_of" and value == 1:
            continue
        raise invalid(key, f"'{key}' is not supported by this endpoint", "unsupported_parameter")


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(key, f"'{key}' must be a number", "invalid_type")
    if not low <= value <= high:
        raise invalid(key, f"'{key}' must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _integer(body: dict[str, Any], key: str, low: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(key, f"'{key}' must be an integer", "invalid_type")
    if value < low:
        raise invalid(key, f"'{key}' must be at least {low}, got {value}")
    return value


def _sampling(body: dict[str, Any], max_tokens_key: str, defaults: Defaults) -> Any:
    max_tokens = _integer(body, max_tokens_key, 1) or _integer(body, "max_tokens", 1)
    sampling = common_pb2.SamplingParams(max_tokens=max_tokens or defaults.max_tokens)
    temperature = _number(body, "temperature", 0.0, 2.0)
    if temperature is not None:
        sampling.temperature = temperature
    top_p = _number(body, "top_p", 0.0, 1.0)
    if top_p is not None:
        if top_p == 0:
            raise invalid("top_p", "'top_p' must be greater than 0")
        sampling.top_p = top_p
    seed = _integer(body, "seed", 0)
    if seed is not None:
        sampling.seed = seed
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid("stop", "'stop' must be a non-empty string or a list of them", "invalid_type")
    if len(stops) > MAX_STOP:
        raise invalid("stop", f"'stop' takes at most {MAX_STOP} strings")
    sampling.stop.extend(stops)
    return sampling


def _options(body: dict[str, Any], defaults: Defaults) -> Any:
    extension = body.get("tierroute") or {}
    if not isinstance(extension, dict):
        raise invalid("tierroute", "'tierroute' must be an object", "invalid_type")
    for key in extension:
        if key not in _EXTENSION_FIELDS:
            raise invalid(
                f"tierroute.{key}",
                f"unknown field 'tierroute.{key}'; known: {sorted(_EXTENSION_FIELDS)}",
                "unsupported_parameter",
            )
    mode = extension.get("fallback_mode") or defaults.fallback_mode
    if mode not in FALLBACK_MODES:
        raise invalid(
            "tierroute.fallback_mode", f"'fallback_mode' must be one of {sorted(FALLBACK_MODES)}"
        )
    options = router_service_pb2.RouteOptions(fallback_mode=FALLBACK_MODES[mode])
    threshold = _number(extension, "fallback_threshold", 0.0, 1.0)
    if threshold is not None:
        options.fallback_threshold = threshold
    max_cost = _number(extension, "max_cost_usd", 0.0, float("inf"))
    if max_cost is not None:
        options.max_cost_usd = max_cost
    return options


def _common(body: Any, supported: frozenset[str]) -> tuple[str, bool, bool]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    _reject_unsupported(body, supported)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "'model' is required (a tier name or the automatic model)")
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("n", "only n=1 is supported", "unsupported_parameter")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise invalid("stream", "'stream' must be a boolean", "invalid_type")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise invalid("stream_options", "'stream_options' must be an object", "invalid_type")
    return model, stream, bool(stream_options.get("include_usage"))


def _content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    param = f"messages[{index}].content"
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise invalid(param, "only text content parts are supported", "unsupported_value")
            if not isinstance(part.get("text"), str):
                raise invalid(param, "a text part needs a string 'text'", "invalid_type")
            parts.append(part["text"])
        return "".join(parts)
    raise invalid(param, "'content' must be a string or a list of text parts", "invalid_type")


def parse_chat(body: Any, defaults: Defaults) -> ParsedRequest:
    """Translate a ``POST /v1/chat/completions`` body; raises :class:`ApiError` (400)."""
    model, stream, include_usage = _common(body, CHAT_FIELDS)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "'messages' must be a non-empty list")
    chat = common_pb2.Chat()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{index}]", "a message must be an object", "invalid_type")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(
                f"messages[{index}].role",
                f"role {role!r} is not supported; use one of {sorted(ROLES)}",
                "unsupported_value",
            )
        if message.get("tool_calls") or message.get("function_call"):
            raise invalid(f"messages[{index}]", "tool calls are not supported", "unsupported_value")
        chat.messages.add(role=ROLES[role], content=_content(message.get("content"), index))
    request = router_service_pb2.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(chat=chat),
        sampling=_sampling(body, "max_completion_tokens", defaults),
        options=_options(body, defaults),
    )
    return ParsedRequest(model, stream, include_usage, request)


def parse_completion(body: Any, defaults: Defaults) -> ParsedRequest:
    """Translate a ``POST /v1/completions`` body (raw prompt, no chat template)."""
    model, stream, include_usage = _common(body, COMPLETION_FIELDS | {"echo", "suffix", "logprobs"})
    if body.get("echo"):
        raise invalid("echo", "'echo' is not supported", "unsupported_parameter")
    for key in ("suffix", "logprobs"):
        if body.get(key) is not None:
            raise invalid(key, f"'{key}' is not supported", "unsupported_parameter")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("prompt", "'prompt' must be a string (or a list of one string)")
    request = router_service_pb2.RouterServiceGenerateRequest(
        # Raw: the completions API continues the text as written, no chat template.
        prompt=common_pb2.Prompt(text=prompt, raw=True),
        sampling=_sampling(body, "max_tokens", defaults),
        options=_options(body, defaults),
    )
    return ParsedRequest(model, stream, include_usage, request)
