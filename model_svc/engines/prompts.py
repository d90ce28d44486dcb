"""Prompt rendering: chat template and tokenization with the model's own tokenizer.

Chat turns always go through the model's chat template. Plain text does too, as one user
turn, unless the caller asks for raw completion (``Prompt.raw``) or the tier is configured for
it (``engine.text_prompts: raw``).

vLLM wraps its tokenizer in a thread-safe pool that deep-copies the whole tokenizer whenever
two threads use it at once, and its detokenizer uses that same pool for every generated token;
tokenizing prompts through it cost more CPU than streaming the answers. So the model service
keeps tokenizers of its own: one used inline on the event loop for ordinary prompts (tens of
microseconds), and one behind a single worker thread for long prompts (milliseconds), so the
event loop never stalls and no tokenizer object is ever used by two threads at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from model_svc.engines.base import ChatTurn, PromptInput

INLINE_MAX_CHARS = 4096
"""Prompts up to this many characters are tokenized on the event loop (well under 1 ms)."""


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template (instruct models do, base models not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def encode(tokenizer: Any, prompt: PromptInput, text_as_chat: bool = True) -> list[int]:
    """Token ids of ``prompt``: chat turns through the chat template; plain text as one user
    turn of that template when ``text_as_chat`` (an instruct model given bare text often ends
    its answer at once, with nothing said), else as is (raw completion, e.g. code
    continuation), and as is too when the caller asked for it (``prompt.raw``). A tokenizer
    without a chat template always gets the text as is."""
    if prompt.text is not None:
        if prompt.raw or not (text_as_chat and has_chat_template(tokenizer)):
            return list(tokenizer.encode(prompt.text))
        turns: tuple[ChatTurn, ...] = (ChatTurn("user", prompt.text),)
    else:
        turns = prompt.chat
    messages = [{"role": turn.role, "content": turn.content} for turn in turns]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not isinstance(rendered, str):
        raise TypeError("the chat template did not render to text")
    # The template already wrote the special tokens; do not add a second BOS.
    return list(tokenizer.encode(rendered, add_special_tokens=False))


def prompt_chars(prompt: PromptInput) -> int:
    """Characters of text the prompt carries."""
    if prompt.text is not None:
        return len(prompt.text)
    return sum(len(turn.content) for turn in prompt.chat)


class PromptRenderer:
    """Renders prompts inline when short, on a dedicated thread when long."""

    def __init__(
        self,
        load: Callable[[], Any],
        inline_max_chars: int = INLINE_MAX_CHARS,
        text_as_chat: bool = True,
    ) -> None:
        self._inline = load()
        self._background = load()
        self._inline_max_chars = inline_max_chars
        self._text_as_chat = text_as_chat
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")

    async def render(self, prompt: PromptInput) -> list[int]:
        """Token ids of ``prompt``."""
        if prompt_chars(prompt) <= self._inline_max_chars:
            return encode(self._inline, prompt, self._text_as_chat)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, encode, self._background, prompt, self._text_as_chat
        )

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
