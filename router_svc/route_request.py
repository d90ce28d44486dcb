"""The router's request as a validated value: read once from the protobuf, on arrival.

:func:`read_generate` and :func:`read_route` read and check a message in one pass and return an
:class:`Arrival`. Its verdict is a :class:`RouteRequest` — what the policy, the cascade, the
ledger and the metrics work from — or the :class:`InvalidArgumentError` naming the offending
field. The servicer delivers that verdict only after the caller passed the gate (a caller
without a valid key learns nothing about its request), so the arrival also carries what the
gate's checks and the prompt log read before then.

The routing text (what the rules and the classifier read) is a raw prompt's text or a chat's
last user message. The prompt and decoding parameters are not interpreted by the router: they
are kept as received, to be passed on unchanged in each tier's request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from router_svc.cascade import FallbackModeName
from router_svc.config import LimitsSettings
from tierroute.errors import InvalidArgumentError
from tierroute.v1 import common_pb2, router_service_pb2

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


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """A Route or Generate request that passed validation."""

    request_id: str
    """The id the request is served and logged under (empty for Route)."""
    routing_text: str
    """What the rules and the classifier read (see the module docstring)."""
    tier_hint: str
    """The tier the caller pinned (empty: let the policy decide)."""
    fallback_mode: FallbackModeName | None
    """The cascade mode asked for; ``None``: the server default."""
    fallback_threshold: float | None
    """The escalation threshold asked for; ``None``: the server default."""
    max_cost_usd: float | None
    """The caller's cap on the worst-case cost; ``None``: no cap."""
    max_tokens: int
    """Completion cap asked for (0: the server default)."""
    worst_case_prompt_tokens: int
    """Upper bound of the prompt's tokens: a BPE token covers at least one byte, and a chat
    template adds at most ``TEMPLATE_TOKENS_PER_MESSAGE`` per message."""
    prompt: common_pb2.Prompt
    """Passed on to the tiers as received (the router does not interpret it)."""
    sampling: common_pb2.SamplingParams
    """Passed on to the tiers as received."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message as read on arrival, before the caller is known."""

    request_id: str
    """The id the request is served and logged under (see :func:`read_generate`)."""
    routing_text: str
    """Also what the prompt log records (``logging.log_prompts``), even for a refused request."""
    tier_hint: str
    """For the caller's permission to pin a tier."""
    streaming: bool
    """Whether STREAMING fallback is asked for (a permission too)."""
    verdict: RouteRequest | InvalidArgumentError
    """The validated request, or what is wrong with it (to be raised once the caller is known)."""


def read_generate(
    request: router_service_pb2.RouterServiceGenerateRequest,
    limits: LimitsSettings,
    metadata_id: str,
) -> Arrival:
    """Read and check a Generate request.

    Its id is the caller's when it may travel in gRPC metadata (an id that may not is refused
    by validation, and not used until then), else ``metadata_id`` (the id the call's metadata
    carries), else a fresh one.
    """
    usable = usable_request_id(request.request_id)
    request_id = (request.request_id if usable else "") or metadata_id or uuid.uuid4().hex
    text = routing_text(request.prompt)
    verdict: RouteRequest | InvalidArgumentError
    try:
        if not usable:
            raise InvalidArgumentError(
                "request_id", f"at most {MAX_REQUEST_ID_CHARS} printable ASCII characters"
            )
        size = _validate_prompt(request.prompt, request.HasField("prompt"), limits)
        _validate_sampling(request.sampling, limits)
        verdict = _route_request(
            request.prompt, request.options, request.sampling, size, request_id, text
        )
    except InvalidArgumentError as exc:
        verdict = exc
    return Arrival(
        request_id, text, request.options.tier_hint, _streaming(request.options), verdict
    )


def read_route(request: router_service_pb2.RouteRequest, limits: LimitsSettings) -> Arrival:
    """Read and check a Route request (prompt and options only: nothing is generated)."""
    text = routing_text(request.prompt)
    verdict: RouteRequest | InvalidArgumentError
    try:
        size = _validate_prompt(request.prompt, request.HasField("prompt"), limits)
        verdict = _route_request(
            request.prompt, request.options, common_pb2.SamplingParams(), size, "", text
        )
    except InvalidArgumentError as exc:
        verdict = exc
    # Route never streams: the STREAMING permission is not asked for.
    return Arrival("", text, request.options.tier_hint, False, verdict)


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


def _streaming(options: router_service_pb2.RouteOptions) -> bool:
    return options.fallback_mode == router_service_pb2.FALLBACK_MODE_STREAMING


def _route_request(
    prompt: common_pb2.Prompt,
    options: router_service_pb2.RouteOptions,
    sampling: common_pb2.SamplingParams,
    prompt_bytes: int,
    request_id: str,
    text: str,
) -> RouteRequest:
    _validate_options(options)
    messages = len(prompt.chat.messages) if prompt.WhichOneof("kind") == "chat" else 0
    return RouteRequest(
        request_id=request_id,
        routing_text=text,
        tier_hint=options.tier_hint,
        fallback_mode=_MODES.get(options.fallback_mode),
        fallback_threshold=(
            options.fallback_threshold if options.HasField("fallback_threshold") else None
        ),
        max_cost_usd=options.max_cost_usd if options.HasField("max_cost_usd") else None,
        max_tokens=sampling.max_tokens,
        worst_case_prompt_tokens=prompt_bytes + TEMPLATE_TOKENS_PER_MESSAGE * messages,
        prompt=prompt,
        sampling=sampling,
    )


def _validate_prompt(prompt: common_pb2.Prompt, present: bool, limits: LimitsSettings) -> int:
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


def _validate_options(options: router_service_pb2.RouteOptions) -> None:
    """Check routing options."""
    if options.fallback_mode not in _MODES and options.fallback_mode != 0:
        raise InvalidArgumentError("options.fallback_mode", f"unknown mode {options.fallback_mode}")
    if options.HasField("fallback_threshold") and not 0 <= options.fallback_threshold <= 1:
        raise InvalidArgumentError("options.fallback_threshold", "must be in [0, 1]")
    if options.HasField("max_cost_usd") and not options.max_cost_usd >= 0:
        raise InvalidArgumentError("options.max_cost_usd", "must be >= 0")


def _validate_sampling(sampling: common_pb2.SamplingParams, limits: LimitsSettings) -> None:
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
