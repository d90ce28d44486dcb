"""What the start-tier model reads of a prompt: cheap features, hashed words, an embedding.

A :class:`Featurizer` turns a routing text into a fixed-length vector. :class:`CheapFeatures`
needs nothing but the text (length, code and maths markers, hashed words; microseconds);
an embedding function (the router's static encoder, when it is configured) is appended by
:class:`WithEmbedding`. The classifier's score is not a feature here: the model adds it as its
prior (see :mod:`router_svc.start_tier.model`).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Embed = Callable[[str], npt.NDArray[np.floating[Any]]]
"""A prompt's embedding (fixed length), e.g. the static encoder's."""

_WORD = re.compile(r"[A-Za-z_]+|\d+|[^\sA-Za-z_\d]")
_CODE = re.compile(r"```|\bdef |\breturn\b|\bimport |\bclass |\bfunction\b|[{};]|=>|\(\)")
_MATHS = re.compile(r"[=+*/^<>]|\d|\b(solve|prove|integral|equation|derivative|sum|how many)\b")
_HEAVY = re.compile(r"\b(step by step|explain|why|implement|write|algorithm|optimi[sz]e)\b")


class Featurizer(Protocol):
    """Turns a routing text into a vector of ``dim`` numbers."""

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    @property
    def signature(self) -> str:
        """Names the feature layout (a persisted model is only reused for the same one)."""
        ...

    def features(self, text: str) -> FloatArray:
        """The vector of ``text``."""
        ...


class CheapFeatures:
    """Length, code and maths markers, and hashed lower-case words (L2-normalised)."""

    MARKERS = 8

    def __init__(self, buckets: int = 256) -> None:
        self._buckets = buckets

    @property
    def dim(self) -> int:
        """Marker features plus hash buckets."""
        return self.MARKERS + self._buckets

    @property
    def signature(self) -> str:
        """``cheap-v1/<buckets>``."""
        return f"cheap-v1/{self._buckets}"

    def features(self, text: str) -> FloatArray:
        """Markers scaled to about [0, 1], then word hashes (crc32: stable across processes)."""
        out = np.zeros(self.dim)
        lower = text.lower()
        words = _WORD.findall(lower)
        n = max(len(words), 1)
        out[0] = math.log1p(len(text)) / 10
        out[1] = math.log1p(len(words)) / 8
        out[2] = min(text.count("\n"), 50) / 50
        out[3] = min(len(_CODE.findall(text)), 20) / 20
        out[4] = min(len(_MATHS.findall(lower)) / n, 1.0)
        out[5] = min(len(_HEAVY.findall(lower)), 5) / 5
        out[6] = 1.0 if "?" in text else 0.0
        out[7] = 1.0 if "```" in text else 0.0
        if words:
            hashed = np.zeros(self._buckets)
            for word in words:
                hashed[zlib.crc32(word.encode()) % self._buckets] += 1.0
            out[self.MARKERS :] = hashed / np.linalg.norm(hashed)
        return out


class WithEmbedding:
    """Another featuriser's vector followed by an embedding of the same text."""

    def __init__(self, base: Featurizer, embed: Embed, embed_dim: int, name: str) -> None:
        self._base = base
        self._embed = embed
        self._embed_dim = embed_dim
        self._name = name

    @property
    def dim(self) -> int:
        """Base features plus the embedding."""
        return self._base.dim + self._embed_dim

    @property
    def signature(self) -> str:
        """The base's signature and the embedding's name and size."""
        return f"{self._base.signature}+{self._name}/{self._embed_dim}"

    def features(self, text: str) -> FloatArray:
        """Concatenation of the two vectors."""
        embedding = np.asarray(self._embed(text), dtype=np.float64).reshape(-1)
        if embedding.shape[0] != self._embed_dim:
            raise ValueError(f"embedding has {embedding.shape[0]} values, not {self._embed_dim}")
        return np.concatenate([self._base.features(text), embedding])
