"""Confidence of a generation from the log-probabilities of the tokens the model sampled.

The function (``CONFIDENCE_METHOD_LOGPROB_LOGISTIC``)
-----------------------------------------------------
For the sampled tokens' natural-log probabilities ``l_1 .. l_n`` (each <= 0):

* ``mean`` = (l_1 + ... + l_n) / n, the mean log-probability (reported raw);
* ``shrunk_mean`` = (l_1 + ... + l_n + k * m0) / (n + k): the mean pulled towards a prior
  ``m0`` (``prior_logprob``) by ``k`` pseudo-tokens (``prior_tokens``). This is the length
  correction: a two-token answer is not judged as sure as a long one with the same mean, and
  the score of a short answer cannot swing to 0 or 1 on a single token;
* ``min_window`` = the lowest mean over any ``w`` consecutive tokens (``window_tokens``; the
  whole answer when it is shorter). It catches a confused stretch inside a fluent answer,
  which a mean over hundreds of tokens would hide;
* ``low_fraction`` = the share of tokens whose probability is below ``low_prob_threshold``.

The statistics go through a logistic calibration::

    z     = bias + w_mean * shrunk_mean + w_window * min_window - p_low * low_fraction
    score = 1 / (1 + exp(-z))                                   # in (0, 1)

with ``w_mean, w_window, p_low >= 0`` so the score never decreases when any token becomes
more probable (monotonic), is bounded in (0, 1), and is defined for zero tokens (the prior).
The parameters come from configuration (``confidence:`` section); the evaluation tooling fits
them on labelled answers. The running confidence on each ``TokenDelta`` is the same function
of the tokens so far, computed incrementally (O(1) per token), so a router can decide early.

This module imports neither gRPC nor vLLM.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfidenceParams:
    """Parameters of the confidence function (see the module docstring)."""

    bias: float = 2.5
    weight_mean: float = 2.0
    weight_min_window: float = 0.5
    penalty_low_prob: float = 2.0
    window_tokens: int = 8
    low_prob_threshold: float = 0.1
    prior_tokens: float = 2.0
    prior_logprob: float = -1.0

    def __post_init__(self) -> None:
        if min(self.weight_mean, self.weight_min_window, self.penalty_low_prob) < 0:
            raise ValueError("confidence weights must be >= 0 (the score must be monotonic)")
        if self.window_tokens < 1:
            raise ValueError("confidence window_tokens must be >= 1")
        if not 0 < self.low_prob_threshold < 1:
            raise ValueError("confidence low_prob_threshold must be in (0, 1)")
        if self.prior_tokens < 0 or self.prior_logprob > 0:
            raise ValueError("confidence prior_tokens must be >= 0 and prior_logprob <= 0")


@dataclass(frozen=True)
class ConfidenceStats:
    """The score and the raw statistics it was computed from."""

    score: float
    mean_logprob: float
    min_logprob: float
    min_window_logprob: float
    low_prob_fraction: float
    token_count: int


def logistic(z: float) -> float:
    """1 / (1 + e^-z), without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ConfidenceTracker:
    """Accumulates token log-probabilities and scores them incrementally."""

    def __init__(self, params: ConfidenceParams) -> None:
        self._p = params
        self._low_cut = math.log(params.low_prob_threshold)
        self._count = 0
        self._sum = 0.0
        self._min = 0.0
        self._low = 0
        self._window: deque[float] = deque(maxlen=params.window_tokens)
        self._window_sum = 0.0
        self._min_window = 0.0

    @property
    def token_count(self) -> int:
        """Tokens seen so far."""
        return self._count

    def add(self, logprobs: Iterable[float]) -> None:
        """Take the log-probabilities of newly sampled tokens, in order."""
        for raw in logprobs:
            # vLLM reports -inf for tokens a sampler forced; clamp so sums stay finite.
            value = min(0.0, max(float(raw), -100.0)) if not math.isnan(raw) else -100.0
            if len(self._window) == self._window.maxlen:
                self._window_sum -= self._window[0]
            self._window.append(value)
            self._window_sum += value
            self._count += 1
            self._sum += value
            self._min = value if self._count == 1 else min(self._min, value)
            self._low += value < self._low_cut
            if len(self._window) == self._window.maxlen:
                window_mean = self._window_sum / len(self._window)
                full = self._count == self._window.maxlen
                self._min_window = window_mean if full else min(self._min_window, window_mean)

    def stats(self) -> ConfidenceStats:
        """Score and statistics of all tokens added so far."""
        p = self._p
        n = self._count
        if n == 0:
            mean = min_lp = min_window = 0.0
            low_fraction = 0.0
            shrunk = p.prior_logprob
            window_term = p.prior_logprob
        else:
            mean = self._sum / n
            min_lp = self._min
            # Shorter than one window: the whole answer is the only window.
            min_window = self._min_window if n >= p.window_tokens else mean
            low_fraction = self._low / n
            shrunk = (self._sum + p.prior_tokens * p.prior_logprob) / (n + p.prior_tokens)
            window_term = min_window
        z = (
            p.bias
            + p.weight_mean * shrunk
            + p.weight_min_window * window_term
            - p.penalty_low_prob * low_fraction
        )
        return ConfidenceStats(
            score=logistic(z),
            mean_logprob=mean,
            min_logprob=min_lp,
            min_window_logprob=min_window,
            low_prob_fraction=low_fraction,
            token_count=n,
        )

    def score(self) -> float:
        """The score alone (the running confidence)."""
        return self.stats().score


def confidence_of(logprobs: Iterable[float], params: ConfidenceParams) -> ConfidenceStats:
    """Score a complete sequence of sampled-token log-probabilities."""
    tracker = ConfidenceTracker(params)
    tracker.add(logprobs)
    return tracker.stats()
