"""The router's classifier at serving time: the encoder switch and the ONNX MiniLM path, no torch.

``classifier.encoder`` picks the encoder: ``static`` (the default; a distilled token-embedding
table in numpy, microseconds per prompt, :mod:`router_svc.encoders.static`) or ``minilm`` (the
transformer in ONNX, below). :func:`load_classifier` builds the configured one; both score with
the same contract (:class:`LoadedClassifier`). :func:`load_static_embedding` gives the static
prompt embedding (``embed(text) -> np.ndarray``) whichever encoder scores.

The MiniLM artefact directory (``$TIERROUTE_CACHE_DIR/classifier/``, built by ``tierroute classifier
build``) holds ``router.int8.onnx`` (encoder, mean pooling, L2 normalisation and the trained
logistic head in one graph), ``router.onnx`` (the same in fp32), ``tokenizer.json`` and
``card.json`` (how it was trained, its calibrated threshold and truncation budget). Names,
truncation and the card are the artefact contract in :mod:`tierroute.classifier_artifact`.

Inference runs in a bounded thread pool (``workers`` threads, each session run using ``threads``
intra-op threads), so the event loop never blocks. Concurrent :meth:`OnnxClassifier.score` calls
are micro-batched: while every worker is busy, new requests queue and go out together (up to
``max_batch``) as one pool task; ``batch_window_ms`` > 0 additionally holds the first request of
an idle period that long to gather company. By default (``batch_mode="rows"``) a batch still runs
one session run per prompt: dynamic int8 quantisation scales activations per run, so one padded
run would make a prompt's score depend on its batch-mates (by up to ~0.03). ``"padded"`` trades
that exactness for throughput on short prompts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort
from pydantic import Field, model_validator

from router_svc.encoders.static import StaticClassifier, StaticEmbedding
from tierroute.classifier_artifact import (  # re-exported: the artefact contract
    ATTENTION_MASK,
    CARD_FILE,
    EMBEDDING_OUTPUT,
    ENCODER_MINILM,
    ENCODER_STATIC,
    INPUT_IDS,
    MODEL_FILE,
    PROBABILITY_OUTPUT,
    TOKENIZER_FILE,
    ClassifierCard,
    FloatArray,
    IntArray,
    PromptEncoder,
    Truncation,
    default_artifact_dir,
    default_static_dir,
    pad,
    read_card,
)
from tierroute.config import Section
from tierroute.errors import OverloadedError, UnavailableError


class ClassifierSettings(Section):
    """Which encoder scores prompts, where its artefact is and how it runs."""

    encoder: Literal["static", "minilm"] = "static"
    """``static``: the distilled token-embedding table (microseconds, computed on the event
    loop); ``minilm``: the MiniLM transformer in ONNX (milliseconds, micro-batched in a thread
    pool). The thread, batch and ``model_path`` settings below apply to ``minilm`` only."""
    static_dir: Path | None = None
    """The static encoder's artefact directory; ``None`` means
    ``$TIERROUTE_CACHE_DIR/classifier/static``."""
    model_path: Path | None = None
    """ONNX file; ``None`` means ``$TIERROUTE_CACHE_DIR/classifier/router.int8.onnx``. The card
    (``card.json``) is read from the same directory."""
    tokenizer_path: Path | None = None
    """``tokenizer.json``; ``None`` means the one next to the model."""
    max_tokens: int | None = Field(default=None, ge=8, le=512)
    """Truncation budget in tokens including ``[CLS]``/``[SEP]``; ``None`` takes the card's (what
    the head was trained with). Larger costs latency roughly linearly."""
    head_tokens: int | None = Field(default=None, ge=0)
    """Tokens kept from the start of a long prompt; the rest of the budget is kept from its end.
    ``None`` takes the card's."""
    threads: int = Field(default=1, ge=1, le=64)
    """Intra-op threads per session run; 1 spends the least CPU per decision (parallelism
    comes from ``workers``)."""
    workers: int = Field(default=2, ge=1, le=64)
    """Session runs in flight at once (size of the bounded thread pool)."""
    max_batch: int = Field(default=32, ge=1, le=1024)
    """Most prompts scored in one session run."""
    batch_window_ms: float = Field(default=0.0, ge=0, le=100)
    """Extra wait (milliseconds) for more prompts before an idle classifier runs a batch."""
    max_pending: int = Field(default=4096, ge=1)
    """Prompts waiting for a worker beyond which ``score`` refuses with ``OverloadedError``."""
    batch_mode: Literal["rows", "padded"] = "rows"
    """How a micro-batch runs: ``rows`` = one session run per prompt (a prompt's score never
    depends on its batch-mates: dynamic int8 quantisation scales activations per run);
    ``padded`` = one padded run per group of similar lengths (more decisions/s for short
    prompts, scores move by up to ~0.03 with the batch's other prompts)."""

    @model_validator(mode="after")
    def _check_budget(self) -> ClassifierSettings:
        if (
            self.max_tokens is not None
            and self.head_tokens is not None
            and self.head_tokens > self.max_tokens - 2
        ):
            raise ValueError("head_tokens must leave room for [CLS] and [SEP] within max_tokens")
        return self

    def resolved_static_dir(self) -> Path:
        """The static encoder's artefact directory this configuration loads."""
        return self.static_dir or default_static_dir()

    def resolved_model_path(self) -> Path:
        """The ONNX file this configuration loads."""
        return self.model_path or default_artifact_dir() / MODEL_FILE

    def resolved_tokenizer_path(self) -> Path:
        """The tokenizer file this configuration loads."""
        return self.tokenizer_path or self.resolved_model_path().parent / TOKENIZER_FILE


class Classifier(Protocol):
    """Scores a prompt: P(the cheapest tier's answer is good enough), in [0, 1]."""

    async def score(self, text: str) -> float:
        """The probability for one prompt."""
        ...


class LoadedClassifier(Classifier, Protocol):
    """A classifier loaded from an artefact: its card, its threshold, and a way to release it."""

    @property
    def default_threshold(self) -> float:
        """The calibrated threshold from the card."""
        ...

    @property
    def card(self) -> ClassifierCard:
        """The artefact's card."""
        ...

    def score_batch(self, texts: Sequence[str]) -> FloatArray:
        """Probabilities of several prompts, synchronously (offline tools and benchmarks)."""
        ...

    def close(self) -> None:
        """Release threads and sessions."""
        ...


def load_classifier(settings: ClassifierSettings) -> LoadedClassifier:
    """The configured encoder's classifier; ``FileNotFoundError`` if its artefact is missing."""
    if settings.encoder == ENCODER_STATIC:
        return StaticClassifier.load(
            settings.resolved_static_dir(),
            max_tokens=settings.max_tokens,
            head_tokens=settings.head_tokens,
        )
    assert settings.encoder == ENCODER_MINILM
    return OnnxClassifier.load(settings)


def load_static_embedding(settings: ClassifierSettings) -> StaticEmbedding:
    """The static prompt embedding (``embed(text) -> np.ndarray``, unit length), whichever
    encoder scores; raises ``FileNotFoundError`` if the static artefact is missing."""
    return StaticClassifier.load(settings.resolved_static_dir()).embedding


_Pending = tuple[str, "asyncio.Future[float]"]


def create_session(model_path: Path, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with ``threads`` intra-op threads and no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads would burn the core the event loop and the other worker need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class OnnxClassifier:
    """:class:`Classifier` over the ONNX artefact; build it with :meth:`load`."""

    def __init__(
        self,
        session: ort.InferenceSession,
        encoder: PromptEncoder,
        card: ClassifierCard,
        settings: ClassifierSettings,
    ) -> None:
        self._session = session
        self._encoder = encoder
        self._card = card
        self._settings = settings
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="classifier"
        )
        self._pending: collections.deque[_Pending] = collections.deque()
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    def load(cls, settings: ClassifierSettings) -> OnnxClassifier:
        """Load the model, tokenizer and card once; raises ``FileNotFoundError`` if missing."""
        model_path = settings.resolved_model_path()
        card_path = model_path.parent / CARD_FILE
        for path in (model_path, settings.resolved_tokenizer_path(), card_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"classifier artefact missing: {path} (build it: tierroute classifier build)"
                )
        card = read_card(card_path)
        truncation = Truncation(
            settings.max_tokens or card.truncation.max_tokens,
            card.truncation.head_tokens if settings.head_tokens is None else settings.head_tokens,
        )
        encoder = PromptEncoder.from_file(settings.resolved_tokenizer_path(), truncation)
        session = create_session(model_path, settings.threads)
        return cls(session, encoder, card, settings)

    @property
    def default_threshold(self) -> float:
        """The calibrated threshold from the card: scores at or above go to the cheapest tier."""
        return self._card.threshold

    @property
    def card(self) -> ClassifierCard:
        """The artefact's card (training data, metrics, calibration)."""
        return self._card

    @property
    def encoder(self) -> PromptEncoder:
        """The tokenizer with this classifier's truncation."""
        return self._encoder

    def score_batch(self, texts: Sequence[str]) -> FloatArray:
        """Probabilities of several prompts, per ``batch_mode`` (blocking; off the event loop)."""
        rows = self._encoder.token_ids(texts)
        result = np.empty(len(rows), dtype=np.float32)
        if self._settings.batch_mode == "rows":
            for index, row in enumerate(rows):
                ids = np.asarray([row], dtype=np.int64)
                result[index] = self._run_probability(ids, np.ones_like(ids))[0]
            return result
        # Padded: sort by length and cut where the longest would more than double the
        # shortest, so short prompts are not padded to a long neighbour's length.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and len(rows[order[stop]]) <= 2 * len(rows[order[start]]):
                stop += 1
            group = order[start:stop]
            ids, mask = pad([rows[i] for i in group])
            result[group] = self._run_probability(ids, mask)
            start = stop
        return result

    def _run_probability(self, ids: IntArray, mask: IntArray) -> FloatArray:
        (probability,) = self._session.run(
            [PROBABILITY_OUTPUT], {INPUT_IDS: ids, ATTENTION_MASK: mask}
        )
        return np.asarray(probability, dtype=np.float32).reshape(ids.shape[0])

    def embed_batch(self, texts: Sequence[str]) -> FloatArray:
        """L2-normalised sentence embeddings (batch x 384) from the same graph (blocking)."""
        ids, mask = self._encoder.encode(texts)
        (embedding,) = self._session.run([EMBEDDING_OUTPUT], {INPUT_IDS: ids, ATTENTION_MASK: mask})
        return np.asarray(embedding, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> FloatArray:
        """:meth:`embed_batch` in the classifier's thread pool."""
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_batch, list(texts))

    async def score(self, text: str) -> float:
        """P(the cheapest tier's answer is good enough) for ``text``, micro-batched."""
        self._check_open()
        if len(self._pending) >= self._settings.max_pending:
            raise OverloadedError("classifier queue full", retry_after_seconds=0.1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._pending.append((text, future))
        window = self._settings.batch_window_ms / 1000.0
        if window > 0 and self._in_flight == 0 and len(self._pending) < self._settings.max_batch:
            if self._timer is None:
                self._timer = loop.call_later(window, self._flush)
        else:
            self._dispatch()
        return await future

    def close(self) -> None:
        """Stop the thread pool; queued calls fail with ``UnavailableError``."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(UnavailableError("classifier closed"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("classifier closed")

    def _flush(self) -> None:
        self._timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        """Send queued prompts to idle workers, up to ``max_batch`` per run (event loop only)."""
        while self._pending and self._in_flight < self._settings.workers and not self._closed:
            batch: list[_Pending] = []
            while self._pending and len(batch) < self._settings.max_batch:
                item = self._pending.popleft()
                if not item[1].done():  # skip callers that were cancelled while queued
                    batch.append(item)
            if not batch:
                return
            self._in_flight += 1
            loop = batch[0][1].get_loop()
            work = self._executor.submit(self.score_batch, [text for text, _ in batch])
            work.add_done_callback(functools.partial(self._hand_back, loop, batch))

    def _hand_back(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Pending],
        done: concurrent.futures.Future[FloatArray],
    ) -> None:
        # Runs in the worker thread: results go back to the loop that is waiting for them.
        _call_soon(loop, self._complete, batch, done)

    def _complete(self, batch: list[_Pending], done: concurrent.futures.Future[FloatArray]) -> None:
        self._in_flight -= 1
        error = done.exception() if not done.cancelled() else UnavailableError("classifier closed")
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(float(done.result()[index]))
        self._dispatch()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    # The worker thread hands results back to the loop that is waiting for them; a loop that
    # has closed meanwhile has nobody left to tell.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
