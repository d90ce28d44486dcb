"""Inference engines behind the model service: the protocol and its implementations.

Only :mod:`.base` is imported eagerly; the vLLM implementation is imported on demand so that
unit tests and tools run without vLLM.
"""

from model_svc.engines.base import (
    ChatTurn,
    Delta,
    Engine,
    EngineDeadError,
    EngineInfo,
    EngineRejectedError,
    FinishReason,
    GenerationRequest,
    PromptInput,
)

__all__ = [
    "ChatTurn",
    "Delta",
    "Engine",
    "EngineDeadError",
    "EngineInfo",
    "EngineRejectedError",
    "FinishReason",
    "GenerationRequest",
    "PromptInput",
]
