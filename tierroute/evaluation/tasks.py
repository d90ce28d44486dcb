"""Live tasks with gold answers, made offline: few-shot arithmetic at mixed difficulty.

The embedded tiers are tiny (SmolLM2-135M and Qwen2.5-Coder-0.5B): on multiple choice both sit
at chance and on grade-school word problems the small one is almost always wrong, so neither
gives the confidence anything to separate. Short arithmetic does: measured greedy on this
platform, the small tier answers one-digit sums and products mostly right and larger operands
mostly wrong, so a mix of five kinds puts it near the middle of the 30-70% range while the
large tier stays well above it (the numbers are in ``docs/evaluation.md``).

Prompts are plain-text completions (no chat template): three worked examples, then the question,
answered on one line (``stop="\\n"``). Items are drawn with a seeded generator, so the same
``seed`` always gives the same task file, and no question repeats: a split of the items by id
(as ``fit-confidence`` makes) is then a split by prompt, with nothing on both sides.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from tierroute.evaluation.live import LiveItem

SHOTS = "Q: 3 + 5\nA: 8\n\nQ: 14 - 6\nA: 8\n\nQ: 7 * 6\nA: 42\n\n"
"""The few-shot preamble of every arithmetic prompt."""

Operands = Callable[[random.Random], tuple[int, str, int]]

ARITHMETIC_KINDS: Mapping[str, Operands] = {
    # one-digit addition and multiplication (times tables): the small tier is often right
    "add_1x1": lambda r: (r.randint(0, 9), "+", r.randint(0, 9)),
    "mul_1x1": lambda r: (r.randint(2, 9), "*", r.randint(2, 9)),
    # a two-digit operand: the small tier is mostly wrong
    "add_2x1": lambda r: (r.randint(10, 99), "+", r.randint(1, 9)),
    "mul_2x1": lambda r: (r.randint(11, 30), "*", r.randint(2, 9)),
    "add_2x2": lambda r: (r.randint(10, 99), "+", r.randint(10, 99)),
}


def _evaluate(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def arithmetic_prompt(a: int, op: str, b: int) -> str:
    """The few-shot prompt asking for ``a op b``."""
    return f"{SHOTS}Q: {a} {op} {b}\nA:"


MAX_DRAWS = 10_000
"""Draws per item before giving up on finding a question not asked yet."""


def arithmetic_items(count: int, seed: int = 0) -> list[LiveItem]:
    """``count`` distinct items cycling through the kinds, operands drawn with ``seed``.

    Raises ``ValueError`` when a kind runs out of distinct questions (one-digit products have
    64, so about 320 items is the most a five-kind task holds).
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    rng = random.Random(seed)
    kinds = list(ARITHMETIC_KINDS)
    items = []
    asked: set[tuple[int, str, int]] = set()
    for index in range(count):
        kind = kinds[index % len(kinds)]
        for _ in range(MAX_DRAWS):
            a, op, b = ARITHMETIC_KINDS[kind](rng)
            if (a, op, b) not in asked:
                break
        else:
            raise ValueError(f"too many items: kind {kind} has no new question left")
        asked.add((a, op, b))
        items.append(
            LiveItem(
                id=f"arith-{seed}-{index:04d}",
                prompt=arithmetic_prompt(a, op, b),
                answer=str(_evaluate(a, op, b)),
                kind="number",
                source=f"arithmetic/{kind}",
            )
        )
    return items
