"""Head + tail truncation with the real tokenizer: what is kept, and that cutting is invisible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from tierroute.classifier_artifact import PromptEncoder, Truncation
from tierroute.outcomes import load_routellm

CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def encoder(tokenizer_path: Path) -> PromptEncoder:
    return PromptEncoder.from_file(tokenizer_path, Truncation(max_tokens=64, head_tokens=16))


@pytest.fixture(scope="module")
def full(tokenizer_path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def test_short_prompt_is_not_padded_to_128(encoder: PromptEncoder) -> None:
    # The shipped tokenizer.json pads to 128; the encoder must switch that off.
    (ids,) = encoder.token_ids(["Hello there"])
    assert ids[0] == CLS and ids[-1] == SEP and len(ids) == 4


def test_long_prompt_keeps_head_and_tail(encoder: PromptEncoder, full: Tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(2000))
    (ids,) = encoder.token_ids([text])
    reference = full.encode(text).ids
    assert len(ids) == 64
    assert ids[:17] == reference[:17]  # [CLS] + 16 head tokens
    assert ids[17:] == reference[-47:]  # 46 tail tokens + [SEP]


def test_cutting_the_raw_text_never_changes_kept_tokens(
    encoder: PromptEncoder, full: Tokenizer
) -> None:
    # The 300 longest real prompts: few-shot style, long passages, tables.
    prompts = sorted((o.prompt for o in load_routellm()), key=len)[-300:]
    assert all(len(encoder.cut_text(p)) < len(p) for p in prompts)
    for prompt, ids in zip(prompts, encoder.token_ids(prompts), strict=True):
        reference = full.encode(prompt).ids
        assert ids == reference[:17] + reference[-47:]


def test_encode_pads_a_batch_with_a_mask(encoder: PromptEncoder) -> None:
    ids, mask = encoder.encode(["Hi", "What is the capital of France?"])
    assert ids.dtype == np.int64 and ids.shape == mask.shape == (2, 9)
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert (ids[mask == 0] == 0).all()


@pytest.mark.parametrize(("max_tokens", "head"), [(2, 0), (16, 15), (16, -1)])
def test_invalid_truncation_is_refused(max_tokens: int, head: int) -> None:
    with pytest.raises(ValueError):
        Truncation(max_tokens, head)


def test_head_only_and_tail_only_budgets(tokenizer_path: Path, full: Tokenizer) -> None:
    text = " ".join(f"token{i}" for i in range(500))
    reference = full.encode(text).ids
    tail_only = PromptEncoder.from_file(tokenizer_path, Truncation(32, 0))
    assert tail_only.token_ids([text])[0] == [CLS, *reference[-31:]]
    head_only = PromptEncoder.from_file(tokenizer_path, Truncation(32, 30))
    assert head_only.token_ids([text])[0] == [*reference[:31], SEP]
