"""Every routing rule: a prompt it must catch, prompts it must leave alone, and the switches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router_svc.rules import (
    CODE_FENCE,
    CODE_LIKE,
    GREETING,
    LONG_PROMPT,
    MATH,
    MULTI_STEP,
    RULE_NAMES,
    SHORT_FACTUAL,
    RuleMatch,
    RuleSet,
    RulesSettings,
)

# A realistic question that no rule should claim: the classifier decides it.
NEUTRAL = (
    "Which of these cities has the larger population, Lyon or Marseille, and by roughly how much?"
)

POSITIVE: dict[str, list[str]] = {
    LONG_PROMPT: ["Summarise this report. " + "The quarterly figures were stable. " * 200],
    CODE_FENCE: ["Why does this fail?\n```\nx = [1, 2\n```", "Fix ~~~ echo $PATH ~~~ please"],
    CODE_LIKE: [
        "def add(a, b):\n    return a + b\nwhat does it print for add(1, 2)?",
        'int main() {\n  printf("hi");\n  return 0;\n}',
        "SELECT name FROM users WHERE age > 30;\nSELECT id FROM orders;",
        "Develop a Python program that counts the words in every file of a folder.",
        "Write a function that reverses a linked list.",
        "Please debug my C++ code: it segfaults.",
    ],
    MATH: [
        "Prove that the square root of 2 is irrational.",
        "Compute \\int_0^1 x^2 dx.",
        "Solve 3x + 5 = 20 for x.",
        "Let $f(x) = x^2$; find f'(3).",
        "Is ∑ 1/n² finite?",
    ],
    MULTI_STEP: [
        "Think step by step: how many weekdays are in March 2025?",
        "Plan my trip:\n1. book flights\n2. find a hotel\n3. rent a car\n4. plan the route",
        "First gather the logs, then group them by host, and finally chart the error rate.",
    ],
    GREETING: ["hi", "Hello! How are you today?", "thanks a lot!", "Good morning everyone"],
    SHORT_FACTUAL: [
        "What is the capital of France?",
        "Who wrote Hamlet?",
        "When did the Berlin Wall fall?",
        "How many legs does a spider have?",
    ],
}

NEGATIVE: dict[str, list[str]] = {
    LONG_PROMPT: ["Summarise this report in two lines.", NEUTRAL],
    CODE_FENCE: ["Use three backticks to format code in Markdown.", NEUTRAL],
    CODE_LIKE: [
        "My plan for the day: shopping; cooking.",
        "I paid $5 for coffee; it was fine.",
        "Write a persuasive email to my landlord about the heating.",
        "Which programming language is older, Fortran or Lisp?",
        NEUTRAL,
    ],
    MATH: [
        "Janet sells eggs at $2 each and muffins at $3 each. Which sells more?",
        "Write a poem about the sea.",
        NEUTRAL,
    ],
    MULTI_STEP: [
        "Give me one tip for better sleep.",
        "Options:\n- tea\n- coffee",  # two items are a choice, not a procedure
        NEUTRAL,
    ],
    GREETING: [
        "Hi, can you help me write a business plan for a bakery?",
        "Hello world program in Rust?",
        "thanks to globalisation, trade grew; explain how",
        NEUTRAL,
    ],
    SHORT_FACTUAL: [
        "What is the capital of France",  # no question mark: not a clear question
        "Why is the sky blue?",
        "What is the best way to explain recursion to a child who likes puzzles?",
        "Who is right in the debate?\nExplain.",
        NEUTRAL,
    ],
}


def only(name: str) -> RuleSet:
    """A rule set with every rule but ``name`` disabled."""
    return RuleSet(RulesSettings(disabled=frozenset(n for n in RULE_NAMES if n != name)))


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, texts in POSITIVE.items() for t in texts])
def test_rule_catches_its_case(name: str, text: str) -> None:
    match = only(name).evaluate(text)
    assert match is not None and match.name == name


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, texts in NEGATIVE.items() for t in texts])
def test_rule_leaves_other_prompts_alone(name: str, text: str) -> None:
    assert only(name).evaluate(text) is None


def test_every_rule_has_positive_and_negative_cases() -> None:
    assert set(POSITIVE) == set(NEGATIVE) == set(RULE_NAMES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello!", RuleMatch(GREETING, "cheapest")),
        ("What is the capital of France?", RuleMatch(SHORT_FACTUAL, "cheapest")),
        ("```print(1)```", RuleMatch(CODE_FENCE, "largest")),
        ("Prove there are infinitely many primes.", RuleMatch(MATH, "largest")),
        (NEUTRAL, None),
    ],
)
def test_default_rule_set_decisions(text: str, expected: RuleMatch | None) -> None:
    assert RuleSet(RulesSettings()).evaluate(text) == expected


def test_largest_tier_rules_win_over_cheap_ones() -> None:
    # A short "what is" question that contains maths is not a cheap factual lookup.
    match = RuleSet(RulesSettings()).evaluate("What is the integral of x^2?")
    assert match == RuleMatch(MATH, "largest")


def test_disabled_rule_is_skipped_by_short_name() -> None:
    rules = RuleSet(RulesSettings(disabled=frozenset({"greeting"})))
    assert rules.evaluate("Hello!") is None
    assert GREETING not in rules.active
    assert rules.names == RULE_NAMES  # the metric label set stays complete


def test_rules_switched_off_decide_nothing() -> None:
    rules = RuleSet(RulesSettings(enabled=False))
    assert rules.active == ()
    assert rules.evaluate("```code```") is None


def test_disabled_accepts_comma_separated_string() -> None:
    settings = RulesSettings.model_validate({"disabled": "greeting, rule:math"})
    assert settings.disabled == frozenset({GREETING, MATH})


def test_unknown_rule_name_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown rule"):
        RulesSettings(disabled=frozenset({"rule:nonsense"}))


def test_long_prompt_threshold_is_configurable() -> None:
    rules = RuleSet(RulesSettings(long_prompt_chars=20))
    assert rules.evaluate("a plain sentence that is long enough") == RuleMatch(
        LONG_PROMPT, "largest"
    )


def test_rule_names_are_prefixed_and_unique() -> None:
    assert len(set(RULE_NAMES)) == len(RULE_NAMES)
    assert all(name.startswith("rule:") for name in RULE_NAMES)


def test_huge_prompt_is_decided_quickly() -> None:
    import time

    rules = RuleSet(RulesSettings(disabled=frozenset({LONG_PROMPT})))
    text = "word " * 200_000  # 1 MB without any marker: every pattern scans all of it
    started = time.perf_counter()
    assert rules.evaluate(text) is None
    assert time.perf_counter() - started < 2.0
