"""Validation of ``GenerateRequest`` messages into domain values (protobuf only, no gRPC).

Every rejection is an :class:`~tierroute.errors.InvalidArgumentError` naming the field (as a
dotted path) and the limit, so callers can fix the request without reading server logs. The
prompt's token count is only known once the engine has tokenized it:
:class:`~model_svc.generation.GenerationService` checks it there, before any generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from model_svc.config import LimitSettings
from model_svc.engines.base import ChatTurn, PromptInput
from tierroute.errors import InvalidArgumentError
from tierroute.v1 import common_pb2, model_service_pb2

_ROLES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
}
MAX_REQUEST_ID_CHARS = 128
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class ValidatedRequest:
    """A Generate request that passed validation (not yet tokenized)."""

    prompt: PromptInput
    max_tokens: int
    """Requested completion cap (tokens), the server default when the request said 0."""
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None
    request_id: str
    """Caller's id (may be empty: then the metadata id or a fresh one is used)."""


def validate_generate(
    request: model_service_pb2.GenerateRequest, limits: LimitSettings
) -> ValidatedRequest:
    """Check a request against the contract and the configured limits."""
    if len(request.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(
            "request_id", f"must be at most {MAX_REQUEST_ID_CHARS} characters"
        )
    prompt = _prompt(request.prompt) if request.HasField("prompt") else None
    if prompt is None:
        raise InvalidArgumentError("prompt", "required: set prompt.text or prompt.chat")
    sampling = request.sampling
    max_tokens = sampling.max_tokens or limits.default_max_tokens
    if not 1 <= max_tokens <= limits.max_tokens:
        raise InvalidArgumentError(
            "sampling.max_tokens",
            f"must be between 1 and {limits.max_tokens} (0 means the default "
            f"{limits.default_max_tokens}); got {sampling.max_tokens}",
        )
    temperature = sampling.temperature if sampling.HasField("temperature") else 0.0
    if not (math.isfinite(temperature) and 0.0 <= temperature <= MAX_TEMPERATURE):
        raise InvalidArgumentError(
            "sampling.temperature", f"must be between 0 and {MAX_TEMPERATURE}; got {temperature}"
        )
    top_p = sampling.top_p if sampling.HasField("top_p") else 1.0
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgumentError("sampling.top_p", f"must be in (0, 1]; got {top_p}")
    if len(sampling.stop) > limits.max_stop_strings:
        raise InvalidArgumentError(
            "sampling.stop",
            f"at most {limits.max_stop_strings} stop strings; got {len(sampling.stop)}",
        )
    for index, stop in enumerate(sampling.stop):
        if not stop:
            raise InvalidArgumentError(f"sampling.stop[{index}]", "must not be empty")
    return ValidatedRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(sampling.stop),
        seed=sampling.seed if sampling.HasField("seed") else None,
        request_id=request.request_id,
    )


def _prompt(prompt: common_pb2.Prompt) -> PromptInput:
    kind = prompt.WhichOneof("kind")
    if kind == "text":
        if not prompt.text.strip():
            raise InvalidArgumentError("prompt.text", "must not be empty")
        return PromptInput(text=prompt.text, raw=prompt.raw)
    if kind == "chat":
        messages = prompt.chat.messages
        if not messages:
            raise InvalidArgumentError("prompt.chat.messages", "at least one message is required")
        turns = []
        for index, message in enumerate(messages):
            field = f"prompt.chat.messages[{index}]"
            role = _ROLES.get(message.role)
            if role is None:
                raise InvalidArgumentError(
                    f"{field}.role", "must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT"
                )
            if not message.content.strip():
                raise InvalidArgumentError(f"{field}.content", "must not be empty")
            turns.append(ChatTurn(role=role, content=message.content))
        if turns[-1].role != "user":
            raise InvalidArgumentError(
                f"prompt.chat.messages[{len(turns) - 1}].role", "the last message must be ROLE_USER"
            )
        return PromptInput(chat=tuple(turns))
    raise InvalidArgumentError("prompt", "required: set prompt.text or prompt.chat")
