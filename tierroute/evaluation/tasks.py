"""Live tasks with gold answers, made offline: few-shot arithmetic at mixed difficulty.

The embedded tiers are tiny (SmolLM2-135M and Qwen2.5-Coder-0.5B): on multiple choice both sit
at chance and on grade-school word problems the small one is almost always wrong, so neither
gives the confidence anything to separate. Short arithmetic does: measured greedy on this
platform, the small tier answers one-digit sums and products mostly right and larger operands
mostly wrong, so a mix of five kinds puts it near the middle of the 30-70% range while the
large tier stays well above it (the numbers are in ``docs/evaluation.md``).

Prompts are plain-text completions (no chat template): three worked examples, then the question,
answered on one line (``stop="\\n"``). Items are drawn with a seeded generator, so the same
``seed`` always gives the same task file.
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


def arithmetic_items(count: int, seed: int = 0) -> list[LiveItem]:
    """``count`` items cycling through the kinds, operands drawn with ``seed``."""
    if count < 1:
        raise ValueError("count must be >= 1")
    rng = random.Random(seed)
    kinds = list(ARITHMETIC_KINDS)
    items = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        a, op, b = ARITHMETIC_KINDS[kind](rng)
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
