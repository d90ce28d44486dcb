"""Signals of an answer's correctness, computed from what the router receives while it streams.

An answer arrives as pieces ``(text, logprobs)``: each TokenDelta's decoded text and the natural
log-probabilities of its tokens (a piece may carry several tokens, or an empty text while a
multi-byte character is incomplete). :func:`answer_features` turns those pieces, and optionally
the prompt, into a flat ``dict[str, float]``:

- ``answer_*``: statistics over every token (mean, min, lowest sliding-window mean, share of
  low-probability tokens, token count, log of the count): what the shipped confidence uses;
- ``span_*``: the same statistics over the tokens of the answer's final span only
  (:func:`tierroute.answers.final_span`: the last code block, the final number, else the final
  sentence), plus the log-probability of the span's first token. A token counts when its piece
  overlaps the span. Without a span they repeat the ``answer_*`` values and ``span_found`` is 0;
- ``span_margin``: span mean minus whole-answer mean (is the result less sure than the working?);
- ``span_is_code`` / ``span_is_number`` / ``span_is_sentence``: which kind of span was found;
- ``prompt_*`` (only with a prompt): length, digits, numbers, code markers — cheap facts a
  learned combination can condition on.

:func:`self_consistency` scores agreement of extra samples with the main answer.

The long working of a chat answer is mostly confident filler; whether the *result* was a guess
shows in the few tokens that write it, which is why the span statistics exist.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tierroute.answers import SpanKind, final_span, normalise_choice, normalise_number

Piece = tuple[str, Sequence[float]]
"""A TokenDelta's text and the log-probabilities of its tokens."""

WINDOW_TOKENS = 8
"""Sliding window of ``min_window_logprob`` (the model service's default)."""
LOW_PROB = 0.1
"""A token below this probability counts as low (the model service's default)."""
FLOOR = -100.0
"""Log-probabilities are clamped here (-inf from a forced token would poison every mean)."""

_STATS = ("mean_logprob", "min_logprob", "min_window_logprob", "low_prob_fraction", "tokens")
ANSWER_FEATURES: tuple[str, ...] = (
    *(f"answer_{name}" for name in _STATS),
    "answer_log_tokens",
)
SPAN_FEATURES: tuple[str, ...] = (
    *(f"span_{name}" for name in _STATS),
    "span_log_tokens",
    "span_first_logprob",
    "span_margin",
    "span_found",
    "span_is_code",
    "span_is_number",
    "span_is_sentence",
)
PROMPT_FEATURES: tuple[str, ...] = (
    "prompt_log_chars",
    "prompt_digits",
    "prompt_numbers",
    "prompt_code",
)
FEATURE_NAMES: tuple[str, ...] = (*ANSWER_FEATURES, *SPAN_FEATURES, *PROMPT_FEATURES)
"""Every key :func:`answer_features` returns with a prompt (without one: no ``prompt_*``)."""

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE_MARKERS = re.compile(r"```|\bdef |\bimport |\breturn\b|\bclass |[{};]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class TokenStats:
    """Log-probability statistics of a run of tokens."""

    mean_logprob: float
    min_logprob: float
    min_window_logprob: float
    low_prob_fraction: float
    tokens: int

    def as_features(self, prefix: str) -> dict[str, float]:
        """``{prefix}_<stat>`` entries, plus ``{prefix}_log_tokens``."""
        return {
            f"{prefix}_mean_logprob": self.mean_logprob,
            f"{prefix}_min_logprob": self.min_logprob,
            f"{prefix}_min_window_logprob": self.min_window_logprob,
            f"{prefix}_low_prob_fraction": self.low_prob_fraction,
            f"{prefix}_tokens": float(self.tokens),
            f"{prefix}_log_tokens": math.log1p(self.tokens),
        }


def token_stats(
    logprobs: Iterable[float], window: int = WINDOW_TOKENS, low_prob: float = LOW_PROB
) -> TokenStats:
    """Statistics of ``logprobs`` (all zeros for no tokens: nothing was doubted).

    Shorter than one window, the whole run is the only window, as in the model service.
    """
    values = [_clamp(x) for x in logprobs]
    if not values:
        return TokenStats(0.0, 0.0, 0.0, 0.0, 0)
    mean = sum(values) / len(values)
    if len(values) < window:
        min_window = mean
    else:
        running = sum(values[:window])
        min_window = running
        for i in range(window, len(values)):
            running += values[i] - values[i - window]
            min_window = min(min_window, running)
        min_window /= window
    cut = math.log(low_prob)
    low = sum(x < cut for x in values) / len(values)
    return TokenStats(mean, min(values), min_window, low, len(values))


def _clamp(raw: float) -> float:
    value = float(raw)
    return FLOOR if math.isnan(value) else min(0.0, max(value, FLOOR))


def span_logprobs(pieces: Sequence[Piece], start: int, end: int) -> list[float]:
    """Log-probabilities of the tokens whose piece overlaps characters ``[start, end)``.

    An empty piece (tokens of a character not complete yet) stands at the first character of
    the text that follows it, which is where its tokens' bytes end up.
    """
    chosen: list[float] = []
    offset = 0
    for text, logprobs in pieces:
        first, last = offset, offset + max(len(text), 1)
        if first < end and last > start:
            chosen.extend(logprobs)
        offset += len(text)
    return chosen


def answer_features(
    pieces: Sequence[Piece],
    *,
    prompt: str | None = None,
    kind: SpanKind | None = None,
    window: int = WINDOW_TOKENS,
    low_prob: float = LOW_PROB,
) -> dict[str, float]:
    """The signals of one answer (see the module docstring for the keys).

    ``kind`` narrows the final span to one kind (``number``, ``code``, ...); ``None`` finds it
    as :func:`tierroute.answers.final_span` does, which is all a router knows.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    if not 0 < low_prob < 1:
        raise ValueError("low_prob must be in (0, 1)")
    every = [x for _, logprobs in pieces for x in logprobs]
    whole = token_stats(every, window, low_prob)
    features = whole.as_features("answer")
    text = "".join(text for text, _ in pieces)
    span = final_span(text, kind)
    span_values = span_logprobs(pieces, span.start, span.end) if span else []
    found = bool(span_values)
    part = token_stats(span_values, window, low_prob) if found else whole
    features.update(part.as_features("span"))
    features["span_first_logprob"] = _clamp(span_values[0]) if found else whole.min_logprob
    features["span_margin"] = part.mean_logprob - whole.mean_logprob
    features["span_found"] = float(found)
    for name in ("code", "number", "sentence"):
        features[f"span_is_{name}"] = float(found and span is not None and span.kind == name)
    if prompt is not None:
        features.update(prompt_features(prompt))
    return features


def prompt_features(prompt: str) -> dict[str, float]:
    """Cheap facts about the prompt: log length, digits, numbers, code markers (0/1)."""
    return {
        "prompt_log_chars": math.log1p(len(prompt)),
        "prompt_digits": float(sum(c.isdigit() for c in prompt)),
        "prompt_numbers": float(len(_NUMBER.findall(prompt))),
        "prompt_code": float(bool(_CODE_MARKERS.search(prompt))),
    }


def final_result(text: str, kind: SpanKind | None) -> str | None:
    """The normalised final result of an answer, for comparing answers with each other.

    Numbers and letters as :mod:`tierroute.answers` normalises them; code as the last fenced
    block with whitespace runs collapsed; a sentence lower-cased with whitespace collapsed.
    """
    if kind == "number":
        return normalise_number(text)
    if kind == "choice":
        return normalise_choice(text)
    span = final_span(text, kind)
    if span is None:
        return None
    if span.kind == "number":
        return normalise_number(text)
    collapsed = " ".join(span.text.split())
    if not collapsed:
        return None
    return collapsed if span.kind == "code" else collapsed.lower()


def self_consistency(main_answer: str, samples: Sequence[str], kind: SpanKind | None) -> float:
    """Share of ``samples`` whose final result equals ``main_answer``'s (0 when it has none).

    Raises ``ValueError`` without samples: agreement of nothing is not evidence.
    """
    if not samples:
        raise ValueError("self-consistency needs at least one sample")
    main = final_result(main_answer, kind)
    if main is None:
        return 0.0
    return sum(final_result(sample, kind) == main for sample in samples) / len(samples)
