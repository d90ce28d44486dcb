"""Prompt rendering: chat template, no second BOS, long prompts off the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from model_svc.engines.base import ChatTurn, PromptInput
from model_svc.engines.prompts import PromptRenderer


class RecordingTokenizer:
    """One id per character; records the thread and the special-token flag of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self.calls.append((threading.current_thread().name, add_special_tokens))
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        assert kwargs == {"add_generation_prompt": True, "tokenize": False}
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def loader(made: list[RecordingTokenizer]) -> Callable[[], RecordingTokenizer]:
    def load() -> RecordingTokenizer:
        made.append(RecordingTokenizer())
        return made[-1]

    return load


async def test_text_gets_special_tokens_and_chat_does_not() -> None:
    tokenizers: list[RecordingTokenizer] = []
    renderer = PromptRenderer(loader(tokenizers))
    assert await renderer.render(PromptInput(text="ab")) == [1, 97, 98]
    chat = PromptInput(chat=(ChatTurn("user", "hi"),))
    assert await renderer.render(chat) == [ord(c) for c in "<user>hi<assistant>"]
    assert [flag for _, flag in tokenizers[0].calls] == [True, False]
    renderer.close()


async def test_long_prompts_are_tokenized_on_the_worker_thread() -> None:
    tokenizers: list[RecordingTokenizer] = []
    renderer = PromptRenderer(loader(tokenizers), inline_max_chars=10)
    await renderer.render(PromptInput(text="short"))
    await renderer.render(PromptInput(text="x" * 11))
    inline, background = tokenizers
    assert [name for name, _ in inline.calls] == [threading.current_thread().name]
    assert len(background.calls) == 1 and background.calls[0][0].startswith("tokenize")
    renderer.close()


class TemplatedTokenizer(RecordingTokenizer):
    """An instruct model's tokenizer: it carries a chat template."""

    chat_template = "{{ messages }}"


async def test_plain_text_gets_the_chat_template_by_default() -> None:
    # An instruct model given bare text ends at once: plain text is one user turn by default.
    renderer = PromptRenderer(lambda: TemplatedTokenizer())
    as_text = await renderer.render(PromptInput(text="What is 2+2?"))
    as_chat = await renderer.render(PromptInput(chat=(ChatTurn("user", "What is 2+2?"),)))
    assert as_text == as_chat == [ord(c) for c in "<user>What is 2+2?<assistant>"]
    renderer.close()


async def test_raw_completion_passes_plain_text_as_is() -> None:
    renderer = PromptRenderer(lambda: TemplatedTokenizer(), text_as_chat=False)
    assert await renderer.render(PromptInput(text="def f(")) == [1, *map(ord, "def f(")]
    # Chat turns still use the template.
    chat = PromptInput(chat=(ChatTurn("user", "hi"),))
    assert await renderer.render(chat) == [ord(c) for c in "<user>hi<assistant>"]
    renderer.close()


async def test_long_plain_text_is_templated_on_the_worker_thread_too() -> None:
    renderer = PromptRenderer(lambda: TemplatedTokenizer(), inline_max_chars=4)
    rendered = await renderer.render(PromptInput(text="long text"))
    assert rendered == [ord(c) for c in "<user>long text<assistant>"]
    renderer.close()


async def test_a_caller_can_ask_for_raw_text_on_a_templated_tier() -> None:
    renderer = PromptRenderer(lambda: TemplatedTokenizer())
    assert await renderer.render(PromptInput(text="def f(", raw=True)) == [1, *map(ord, "def f(")]
    renderer.close()
