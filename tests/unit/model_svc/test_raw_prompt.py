"""``Prompt.raw`` reaches the prompt renderer: plain text as is, on request only."""

from __future__ import annotations

from model_svc.config import LimitSettings
from model_svc.engines.base import PromptInput
from model_svc.validation import validate_generate
from tierroute.v1 import common_pb2, model_service_pb2


def _validated(prompt: common_pb2.Prompt) -> PromptInput:
    request = model_service_pb2.GenerateRequest(prompt=prompt)
    return validate_generate(request, LimitSettings()).prompt


def test_raw_travels_with_the_text() -> None:
    prompt = _validated(common_pb2.Prompt(text="def f(", raw=True))
    assert prompt.raw is True and prompt.text == "def f("


def test_plain_text_is_not_raw_by_default() -> None:
    assert _validated(common_pb2.Prompt(text="What is 2+2?")).raw is False
