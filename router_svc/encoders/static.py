"""The static-embedding classifier: token-embedding table + mean + L2 norm + logistic head, numpy.

The table (``embeddings.npy``, vocabulary x dimensions, float16) is MiniLM distilled with
``model2vec`` by ``tierroute classifier build``: one vector per token of its tokenizer
(``tokenizer.json``). A prompt's embedding is the mean of its tokens' vectors (no ``[CLS]`` /
``[SEP]``), L2-normalised; the score is ``sigmoid(embedding @ weight + bias)`` with the head
from ``card.json``. Training computes its features with this very class, so serving sees what
the head was trained on.

Truncation keeps the first ``head_tokens`` and the last ``max_tokens - head_tokens`` tokens of a
long prompt (the question of a few-shot prompt is at its end). The raw text is cut to a
character budget around them first: tokenising costs time in proportion to the raw length.

A decision costs tens of microseconds, less than a hop to a thread pool, so :meth:`score`
computes inline on the event loop; nothing is queued, nothing can time out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tierroute.classifier_artifact import (
    CARD_FILE,
    CHARS_PER_TOKEN_BOUND,
    STATIC_TABLE_FILE,
    TOKENIZER_FILE,
    ClassifierCard,
    FloatArray,
    Truncation,
    read_card,
)


@dataclass(frozen=True)
class LogisticHead:
    """``sigmoid(embedding @ weight + bias)``, float32."""

    weight: FloatArray
    bias: float

    @classmethod
    def from_card(cls, card: ClassifierCard) -> LogisticHead:
        """The head stored in the card (``head.weight``, ``head.bias``)."""
        try:
            head = card.raw["head"]
            weight = np.asarray(head["weight"], dtype=np.float32)
            bias = float(head["bias"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"card has no logistic head ({exc!r})") from exc
        return cls(weight=weight, bias=bias)

    def probability(self, embeddings: FloatArray) -> FloatArray:
        """One probability per row of ``embeddings`` (batch x dim)."""
        logits = embeddings @ self.weight + np.float32(self.bias)
        # Clipped: exp overflows float32 past ~88, and the probability is 0 or 1 there anyway.
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80))), dtype=np.float32)


class StaticEmbedding:
    """Text → L2-normalised mean of its tokens' static vectors (see the module docstring)."""

    def __init__(self, tokenizer: Tokenizer, table: np.ndarray, truncation: Truncation) -> None:
        # Padding or truncation configured in the file would change which tokens are averaged.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if table.ndim != 2 or table.shape[0] < tokenizer.get_vocab_size():
            raise ValueError(
                f"table {table.shape} does not cover the tokenizer's "
                f"{tokenizer.get_vocab_size()} tokens"
            )
        self._tokenizer = tokenizer
        # float32 rows: the mean of float16 vectors would lose digits the head can see.
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        self.truncation = truncation
        self._head = truncation.head_tokens
        self._tail = truncation.max_tokens - truncation.head_tokens
        self._head_chars = self._head * CHARS_PER_TOKEN_BOUND
        self._tail_chars = self._tail * CHARS_PER_TOKEN_BOUND

    @classmethod
    def load(cls, directory: Path, truncation: Truncation) -> StaticEmbedding:
        """Load ``tokenizer.json`` and ``embeddings.npy`` from ``directory``."""
        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        table = np.load(directory / STATIC_TABLE_FILE, allow_pickle=False)
        return cls(tokenizer, table, truncation)

    @property
    def dimensions(self) -> int:
        """Length of one embedding."""
        return int(self._table.shape[1])

    def cut_text(self, text: str) -> str:
        """The raw text reduced to what can reach the kept tokens (cheap to tokenise)."""
        if len(text) <= self._head_chars + self._tail_chars + 1:
            return text
        tail = text[-self._tail_chars :] if self._tail_chars else ""
        return text[: self._head_chars] + " " + tail

    def _keep(self, ids: list[int]) -> list[int]:
        if len(ids) <= self._head + self._tail:
            return ids
        return ids[: self._head] + (ids[len(ids) - self._tail :] if self._tail else [])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text after truncation (no special tokens)."""
        encodings = self._tokenizer.encode_batch(
            [self.cut_text(t) for t in texts], add_special_tokens=False
        )
        return [self._keep(encoding.ids) for encoding in encodings]

    def _pool(self, ids: list[int]) -> FloatArray:
        if not ids:
            # No token at all (empty or whitespace): the zero vector; the head's bias decides.
            return np.zeros(self.dimensions, dtype=np.float32)
        # The sum points where the mean points, and normalising drops the length: no division
        # by the count needed (a few microseconds less on the hot path).
        total: FloatArray = self._table[ids].sum(axis=0)
        norm = math.sqrt(float(total @ total))
        if norm > 0.0:
            total /= np.float32(norm)
        return total

    def embed(self, text: str) -> FloatArray:
        """The embedding of one text: shape ``(dimensions,)``, float32, unit length (or zero)."""
        encoding = self._tokenizer.encode(self.cut_text(text), add_special_tokens=False)
        return self._pool(self._keep(encoding.ids))

    def embed_batch(self, texts: Sequence[str]) -> FloatArray:
        """Embeddings of several texts: shape ``(len(texts), dimensions)``."""
        result = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for index, ids in enumerate(self.token_ids(texts)):
            result[index] = self._pool(ids)
        return result


class StaticClassifier:
    """The router's classifier over the static encoder (``classifier.encoder: static``)."""

    def __init__(self, embedding: StaticEmbedding, head: LogisticHead, card: ClassifierCard):
        if head.weight.shape != (embedding.dimensions,):
            raise ValueError(
                f"head has {head.weight.shape[0]} weights, the table {embedding.dimensions} columns"
            )
        self._embedding = embedding
        self._head = head
        self._card = card

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        max_tokens: int | None = None,
        head_tokens: int | None = None,
    ) -> StaticClassifier:
        """Load the artefact in ``directory``; ``None`` budgets take the card's."""
        files = (directory / STATIC_TABLE_FILE, directory / TOKENIZER_FILE, directory / CARD_FILE)
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(
                    f"classifier artefact missing: {path} (build it: tierroute classifier build)"
                )
        card = read_card(directory / CARD_FILE)
        truncation = Truncation(
            max_tokens or card.truncation.max_tokens,
            card.truncation.head_tokens if head_tokens is None else head_tokens,
        )
        return cls(StaticEmbedding.load(directory, truncation), LogisticHead.from_card(card), card)

    @property
    def default_threshold(self) -> float:
        """The calibrated threshold from the card: scores at or above go to the cheapest tier."""
        return self._card.threshold

    @property
    def card(self) -> ClassifierCard:
        """The artefact's card (training data, metrics, calibration, head)."""
        return self._card

    @property
    def embedding(self) -> StaticEmbedding:
        """The static prompt embedding (for components that learn from prompts)."""
        return self._embedding

    def embed(self, text: str) -> FloatArray:
        """The static embedding of ``text`` (see :meth:`StaticEmbedding.embed`)."""
        return self._embedding.embed(text)

    def score_batch(self, texts: Sequence[str]) -> FloatArray:
        """Probabilities of several prompts (the same numbers :meth:`score` gives one by one)."""
        return self._head.probability(self._embedding.embed_batch(texts))

    def score_one(self, text: str) -> float:
        """The probability of one prompt, synchronously (float64; ``score_batch`` to ~1e-7)."""
        logit = float(self._embedding.embed(text) @ self._head.weight) + self._head.bias
        # Plain floats: numpy's per-call overhead would be most of a one-prompt decision.
        return 1.0 / (1.0 + math.exp(-min(max(logit, -80.0), 80.0)))

    async def score(self, text: str) -> float:
        """P(the cheapest tier's answer is good enough) for ``text``; computed inline."""
        return self.score_one(text)

    def close(self) -> None:
        """Nothing to release (no threads, no sessions); here for the classifier interface."""
