"""Live tasks made offline: few-shot arithmetic at mixed difficulty, and code tasks.

Code tasks (``humaneval`` and the other sets of :mod:`tierroute_tools.evaluation.code_tasks`) become
items whose prompt is the task's own prompt and which :class:`CodeScorer` judges by running
the task's tests on the answer in a sandbox, in a thread pool so the event loop keeps serving.

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

import asyncio
import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

from tierroute.sandbox import Limits
from tierroute_tools.evaluation.live import CODE, LiveItem, Score

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


CODE_MAX_TOKENS = 384
"""Answer budget of code tasks: HumanEval bodies fit with room to spare."""


def code_task_sets() -> tuple[str, ...]:
    """Names of the code task sets ``--task`` accepts."""
    from tierroute_tools.evaluation.code_tasks import TASK_SETS

    return tuple(TASK_SETS)


def code_stop_sequences() -> tuple[str, ...]:
    """Stop strings that end a code answer (the task module's)."""
    from tierroute_tools.evaluation.code_tasks import STOP_SEQUENCES

    return tuple(STOP_SEQUENCES)


def code_items(name: str, limit: int | None = None) -> tuple[list[LiveItem], dict[str, Any]]:
    """Items of a code task set and the tasks by item id (for :class:`CodeScorer`)."""
    from tierroute_tools.evaluation.code_tasks import build_prompt, load_tasks

    tasks = load_tasks(name, limit)
    items = [
        LiveItem(
            id=str(task.id),
            prompt=build_prompt(task),
            answer="",
            kind=CODE,
            source=str(task.source),
        )
        for task in tasks
    ]
    if len({item.id for item in items}) != len(items):
        raise ValueError(f"task set {name}: task ids are not unique")
    return items, {str(task.id): task for task in tasks}


class CodeScorer:
    """Runs each answer against its task's tests in the sandbox, ``workers`` at a time.

    The sandbox is a child process with a wall-clock limit, so each run blocks a thread, never
    the event loop; ``workers`` bounds how many run at once beside the engines.
    """

    def __init__(
        self, tasks: Mapping[str, Any], workers: int = 2, limits: Limits | None = None
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._tasks = tasks
        self._limits = limits or Limits()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")

    async def score(self, item: LiveItem, text: str) -> Score:
        """Pass/fail of ``text`` on the item's tests, with the sandbox's status and time."""
        from tierroute_tools.evaluation.code_tasks import score

        task = self._tasks[item.id]
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, score, task, text, self._limits)
        isolation = result.isolation
        if result.below_default:
            isolation += " below-default:" + "+".join(result.below_default)
        return Score(
            bool(result.passed), None, str(result.status), float(result.seconds), isolation
        )

    def close(self) -> None:
        """Wait for running sandboxes and free the threads."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
