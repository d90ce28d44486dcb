"""The classifier artefact's contract, shared by the router (serving) and the offline tools
(training, export, evaluation): file and tensor names, the artefact directory, head + tail
truncation with its prompt encoder, and the card (``card.json``). Two encoders share it: the
static token-embedding table (``static/``, the default) and the MiniLM transformer in ONNX.

Truncation keeps the *head and the tail* of a long prompt: the first ``head_tokens`` tokens and
the last ``max_tokens - head_tokens - 2`` (plus ``[CLS]``/``[SEP]``). The tail holds the actual
question of few-shot or long-context prompts, the head its framing. Before tokenising, the raw
text is cut to a generous character budget around the same head and tail, because tokenising
costs time in proportion to the raw length, not the kept length. Training encodes prompts with
this very class, so the head sees exactly what serving feeds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from tierroute.paths import default_cache_dir

ARTIFACT_SUBDIR = "classifier"
MODEL_FILE = "router.int8.onnx"
FP32_MODEL_FILE = "router.onnx"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "card.json"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
PROBABILITY_OUTPUT = "probability"
EMBEDDING_OUTPUT = "embedding"
# The static-embedding encoder (the default): a sub-directory of the artefact directory holding
# the token-embedding table, its tokenizer and its card (logistic head included).
STATIC_SUBDIR = "static"
STATIC_TABLE_FILE = "embeddings.npy"
ENCODER_STATIC = "static"
ENCODER_MINILM = "minilm"
# Upper bound of characters one kept token can span in the raw text (WordPiece pieces of
# ordinary text are 3-6 characters); cutting beyond it never removes a token we would keep.
CHARS_PER_TOKEN_BOUND = 12

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def default_artifact_dir() -> Path:
    """``$TIERROUTE_CACHE_DIR/classifier``, else ``<repository>/.cache/tierroute/classifier``."""
    return default_cache_dir() / ARTIFACT_SUBDIR


def default_static_dir() -> Path:
    """The static encoder's artefact: ``<classifier artefact directory>/static``."""
    return default_artifact_dir() / STATIC_SUBDIR


@dataclass(frozen=True)
class Truncation:
    """Head + tail token budget; see the module docstring."""

    max_tokens: int
    head_tokens: int

    def __post_init__(self) -> None:
        if self.max_tokens < 3 or not 0 <= self.head_tokens <= self.max_tokens - 2:
            raise ValueError(f"invalid truncation {self}")

    @property
    def tail_tokens(self) -> int:
        """Tokens kept from the end of a long prompt."""
        return self.max_tokens - 2 - self.head_tokens


class PromptEncoder:
    """Text → padded ``input_ids``/``attention_mask`` with head + tail truncation."""

    def __init__(self, tokenizer: Tokenizer, truncation: Truncation) -> None:
        # The shipped tokenizer.json pads every input to 128 and truncates at 128 tokens;
        # both would defeat the budget, so the encoder does its own.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.truncation = truncation
        self._head_chars = truncation.head_tokens * CHARS_PER_TOKEN_BOUND
        self._tail_chars = truncation.tail_tokens * CHARS_PER_TOKEN_BOUND

    @classmethod
    def from_file(cls, path: Path, truncation: Truncation) -> PromptEncoder:
        """Load ``tokenizer.json``."""
        return cls(Tokenizer.from_file(str(path)), truncation)

    def cut_text(self, text: str) -> str:
        """The raw text reduced to what can reach the kept tokens (cheap to tokenise)."""
        if len(text) <= self._head_chars + self._tail_chars + 1:
            return text
        tail = text[-self._tail_chars :] if self._tail_chars else ""
        return text[: self._head_chars] + " " + tail

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text after truncation, ``[CLS]`` first and ``[SEP]`` last."""
        encodings = self._tokenizer.encode_batch([self.cut_text(t) for t in texts])
        head, tail = self.truncation.head_tokens, self.truncation.tail_tokens
        result = []
        for encoding in encodings:
            ids: list[int] = encoding.ids
            if len(ids) > self.truncation.max_tokens:
                ids = ids[: 1 + head] + ids[len(ids) - tail - 1 :]
            result.append(ids)
        return result

    def encode(self, texts: Sequence[str]) -> tuple[IntArray, IntArray]:
        """Right-padded ``input_ids`` and ``attention_mask`` (int64, shape batch x longest)."""
        return pad(self.token_ids(texts))


def pad(rows: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
    """Token id rows right-padded with 0 into ``input_ids`` and ``attention_mask``."""
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


@dataclass(frozen=True)
class ClassifierCard:
    """The parts of ``card.json`` serving needs; ``raw`` holds the whole card."""

    threshold: float
    truncation: Truncation
    raw: dict[str, Any]


def read_card(path: Path) -> ClassifierCard:
    """Parse ``card.json``; raises ``ValueError`` when it lacks what serving needs."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    try:
        model = raw["model"]
        truncation = Truncation(int(model["max_tokens"]), int(model["head_tokens"]))
        threshold = float(raw["calibration"]["threshold"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a classifier card ({exc!r} missing)") from exc
    return ClassifierCard(threshold=threshold, truncation=truncation, raw=raw)
