"""Signals of an answer from its streamed pieces, and self-consistency of samples."""

from __future__ import annotations

import math

import pytest

from tierroute.answer_features import (
    ANSWER_FEATURES,
    FEATURE_NAMES,
    SPAN_FEATURES,
    answer_features,
    final_result,
    self_consistency,
    span_logprobs,
    token_stats,
)


def test_token_stats() -> None:
    stats = token_stats([-0.1, -0.2, -3.0, -0.1], window=2, low_prob=0.1)
    assert stats.tokens == 4
    assert stats.mean_logprob == pytest.approx(-0.85)
    assert stats.min_logprob == pytest.approx(-3.0)
    assert stats.min_window_logprob == pytest.approx(-1.6)  # (-0.2 - 3.0) / 2
    assert stats.low_prob_fraction == pytest.approx(0.25)  # only -3.0 < log(0.1)


def test_token_stats_short_and_empty_and_clamped() -> None:
    short = token_stats([-1.0, -2.0], window=8)
    assert short.min_window_logprob == pytest.approx(short.mean_logprob)
    empty = token_stats([])
    assert (empty.tokens, empty.mean_logprob, empty.low_prob_fraction) == (0, 0.0, 0.0)
    clamped = token_stats([float("-inf"), float("nan"), 0.5])
    assert clamped.min_logprob == -100.0
    assert clamped.mean_logprob == pytest.approx(-200.0 / 3)


def test_span_logprobs_takes_tokens_of_overlapping_pieces() -> None:
    pieces = [("The answer", [-0.1, -0.1]), (" is", [-0.2]), (" 5", [-2.0]), (".", [-0.3])]
    text = "".join(t for t, _ in pieces)
    start = text.index("5")
    assert span_logprobs(pieces, start, start + 1) == [-2.0]
    # a span straddling two pieces takes both pieces' tokens
    assert span_logprobs(pieces, text.index("is"), start + 1) == [-0.2, -2.0]


def test_empty_piece_belongs_to_the_text_after_it() -> None:
    pieces = [("cost ", [-0.1]), ("", [-1.5]), ("€5", [-0.5, -0.7])]
    assert span_logprobs(pieces, 5, 7) == [-1.5, -0.5, -0.7]
    assert span_logprobs(pieces, 0, 4) == [-0.1]


def test_features_of_a_number_answer() -> None:
    pieces = [
        ("7 times 8", [-0.05, -0.05, -0.05]),
        (" is", [-0.1]),
        (" 54", [-2.5]),
        (".", [-0.05]),
    ]
    features = answer_features(pieces, prompt="What is 7 times 8?")
    assert set(features) == set(FEATURE_NAMES)
    assert features["span_found"] == 1.0
    assert features["span_is_number"] == 1.0
    assert features["span_is_code"] == 0.0
    assert features["span_tokens"] == 1.0
    assert features["span_mean_logprob"] == pytest.approx(-2.5)
    assert features["span_first_logprob"] == pytest.approx(-2.5)
    assert features["answer_tokens"] == 6.0
    assert features["answer_log_tokens"] == pytest.approx(math.log1p(6))
    whole = (-0.05 * 4 - 0.1 - 2.5) / 6
    assert features["answer_mean_logprob"] == pytest.approx(whole)
    assert features["span_margin"] == pytest.approx(-2.5 - whole)
    assert features["prompt_digits"] == 2.0
    assert features["prompt_numbers"] == 2.0
    assert features["prompt_code"] == 0.0


def test_a_sure_result_after_unsure_working_has_a_positive_margin() -> None:
    pieces = [("Hmm, maybe", [-3.0, -2.0]), (" so = ", [-1.0]), ("56", [-0.01])]
    features = answer_features(pieces)
    assert features["span_margin"] > 0
    assert not any(name.startswith("prompt_") for name in features)


def test_code_answer_span_is_the_code_block() -> None:
    pieces = [
        ("Sure:\n", [-0.5]),
        ("```python\n", [-0.1]),
        ("def f():\n", [-0.2, -0.2]),
        ("    return 1\n", [-1.0]),
        ("```", [-0.1]),
        ("\nThe function returns 1.", [-0.3, -0.3]),
    ]
    features = answer_features(pieces, prompt="```python\ndef f():\n```")
    assert features["span_is_code"] == 1.0
    assert features["span_tokens"] == 3.0  # the two pieces inside the block
    assert features["prompt_code"] == 1.0


def test_without_a_span_span_features_repeat_the_whole_answer() -> None:
    features = answer_features([("   ", [-0.4]), ("", [-0.6])])
    assert features["span_found"] == 0.0
    for name in ANSWER_FEATURES:
        assert features[name.replace("answer_", "span_")] == features[name]
    assert features["span_margin"] == 0.0
    assert {n for n in SPAN_FEATURES if n.startswith("span_is_") and features[n]} == set()


def test_empty_answer() -> None:
    features = answer_features([])
    assert features["answer_tokens"] == 0.0
    assert features["span_found"] == 0.0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="window"):
        answer_features([("1", [-0.1])], window=0)
    with pytest.raises(ValueError, match="low_prob"):
        answer_features([("1", [-0.1])], low_prob=1.0)


def test_final_result_normalises() -> None:
    assert final_result("so it costs $1,000.00", "number") == "1000"
    assert final_result("The answer is (b)", "choice") == "B"
    assert final_result("```python\ndef f():\n    return  1\n```", "code") == "def f(): return 1"
    assert final_result("no code", "code") is None
    assert final_result("It is Paris.", None) == "it is paris."


def test_self_consistency_numbers() -> None:
    main = "7 times 8 is 56."
    samples = ["The product is 56", "7*8 = 56.0", "It is 54."]
    assert self_consistency(main, samples, "number") == pytest.approx(2 / 3)
    assert self_consistency(main, samples, None) == pytest.approx(2 / 3)


def test_self_consistency_code_ignores_whitespace() -> None:
    main = "```python\ndef f(x):\n    return x + 1\n```"
    same = "Here you go:\n```python\ndef f(x):\n        return x + 1\n\n```"
    other = "```python\ndef f(x):\n    return x - 1\n```"
    assert self_consistency(main, [same, other], "code") == pytest.approx(0.5)


def test_self_consistency_without_a_result_or_samples() -> None:
    assert self_consistency("no idea", ["5"], "number") == 0.0
    with pytest.raises(ValueError, match="at least one sample"):
        self_consistency("5", [], "number")
