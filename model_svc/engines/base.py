"""The engine contract the servicer depends on, and its vocabulary (no gRPC, no vLLM).

An :class:`Engine` turns prompt token ids into a stream of :class:`Delta` (token ids, text and
the sampled tokens' log-probabilities). The vLLM implementation lives in ``vllm_engine``;
unit tests use a scripted fake that implements the same protocol.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tierroute.errors import InvalidArgumentError, UnavailableError


class FinishReason(enum.Enum):
    """Why a generation stopped."""

    STOP = "stop"
    LENGTH = "length"
    ABORTED = "abort"


@dataclass(frozen=True)
class ChatTurn:
    """One chat message; ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str


@dataclass(frozen=True)
class PromptInput:
    """Either plain ``text`` or ``chat`` turns. Chat turns go through the model's chat template;
    so does text (as one user turn) unless ``raw`` or the tier's ``engine.text_prompts`` asks
    for it as is."""

    text: str | None = None
    chat: tuple[ChatTurn, ...] = ()
    raw: bool = False
    """With ``text``: the caller asked for raw completion (``Prompt.raw``), no template."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, already validated and tokenized."""

    request_id: str
    prompt_token_ids: Sequence[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Delta:
    """Newly generated tokens; ``finish_reason`` is set on the last delta only."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: FinishReason | None = None


@dataclass(frozen=True)
class EngineInfo:
    """Static facts about a loaded engine."""

    engine: str
    """Engine name and version, e.g. ``vllm 0.32.0``."""
    model_name: str
    """Name the model is served under."""
    max_model_len: int
    """Prompt plus completion limit (tokens)."""
    extra: dict[str, str] = field(default_factory=dict)


class EngineDeadError(UnavailableError):
    """The engine stopped working; nothing will succeed until the process is restarted."""


class EngineRejectedError(InvalidArgumentError):
    """The engine refused a request the servicer's validation let through."""

    def __init__(self, description: str) -> None:
        super().__init__("request", description)


class Engine(Protocol):
    """An inference engine serving one model."""

    @property
    def info(self) -> EngineInfo:
        """Facts about the loaded model (valid after :meth:`start`)."""
        ...

    async def start(self) -> None:
        """Load the model; raises when it cannot."""
        ...

    async def render_prompt(self, prompt: PromptInput) -> list[int]:
        """Token ids of the prompt (chat template applied for chat input)."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream deltas; closing the iterator early aborts the request in the engine."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request (no error when it already finished)."""
        ...

    def is_alive(self) -> bool:
        """False once the engine has died (or before it was started)."""
        ...

    def num_unfinished_requests(self) -> int:
        """Requests the engine still holds (waiting or running)."""
        ...

    async def shutdown(self) -> None:
        """Stop the engine and release its resources."""
        ...
