"""The code judge, with the real sandbox: examples and tests run, early exits never pass."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.sandbox_privileges import sandbox_limits
from tierroute.judges import CodeJudge, JudgeCase
from tierroute.judges import code as code_module
from tierroute.judges.code import build_program, candidate_code, prompt_examples, prompt_imports
from tierroute.sandbox import Limits, SandboxResult

PROMPT = '''Complete this function.

```python
from typing import List


def total(xs: List[int]) -> int:
    """Sum of xs.
    >>> total([1, 2, 3])
    6
    >>> total([])
    0
    """
```
'''

RIGHT = "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```"


@pytest.fixture(scope="module")
def judge() -> CodeJudge:
    return CodeJudge(sandbox_limits(Limits(timeout_seconds=5.0, cpu_seconds=5)), concurrency=2)


async def _run(judge: CodeJudge, answer: str, tests: str | None = None) -> tuple[bool, bool, str]:
    verdict = await judge.judge(JudgeCase(PROMPT, answer, tests=tests))
    return verdict.decided, verdict.acceptable, verdict.reason


def test_examples_are_read_from_the_prompt() -> None:
    examples = prompt_examples(
        '    >>> f(1,\n    ...   2)\n    [1,\n     2]\n    >>> x = 3\n    >>> g()\n    3"""\n'
    )
    assert [(e.source, e.want) for e in examples] == [
        ("f(1,\n  2)", "[1,\n 2]"),
        ("x = 3", ""),
        ("g()", "3"),
    ]
    assert prompt_imports(PROMPT) == ["from typing import List"]


def test_program_keeps_definitions_and_drops_example_calls() -> None:
    answer = (
        "```python\nfrom __future__ import annotations\nimport math\nprint('hi')\n"
        "def f():\n    return 1\nif __name__ == '__main__':\n    input()\n```"
    )
    program = build_program("", answer, "assert f() == 1", "TOKEN")
    assert program.startswith("from __future__ import annotations")
    assert "import math" in program and "def f():" in program
    assert "print('hi')" not in program and "input()" not in program
    assert program.rstrip().endswith("_tierroute_run_checks('assert f() == 1')")
    assert candidate_code("plain text, no fence") == "plain text, no fence"
    usage = "```python\ndef f():\n    return 1\n```\nUse it:\n```python\nprint(f())\n```"
    assert candidate_code(usage) == "def f():\n    return 1\n"
    assert candidate_code("```python\nx = 1\n```\n```python\ny = 2\n```") == "y = 2\n"


async def test_right_answer_passes_the_examples(judge: CodeJudge) -> None:
    assert await _run(judge, RIGHT) == (True, True, "the prompt's examples passed")


async def test_wrong_answer_fails_the_examples(judge: CodeJudge) -> None:
    decided, acceptable, _ = await _run(judge, RIGHT.replace("sum(xs)", "sum(xs) + 1"))
    assert decided and not acceptable


@pytest.mark.parametrize(
    "body",
    [
        "    import sys\n    sys.exit(0)",
        "    import os\n    os._exit(0)",
        "    raise SystemExit(0)",
    ],
)
async def test_exiting_early_with_status_zero_never_passes(judge: CodeJudge, body: str) -> None:
    answer = f"```python\ndef total(xs):\n{body}\n```"
    decided, acceptable, reason = await _run(judge, answer)
    assert decided and not acceptable
    assert reason == "exited before the prompt's examples completed"


async def test_module_level_exit_never_passes(judge: CodeJudge) -> None:
    answer = (
        "```python\nimport sys\nif True:\n    sys.exit(0)\ndef total(xs):\n    return sum(xs)\n```"
    )
    decided, acceptable, _ = await _run(judge, answer)
    assert decided and not acceptable


async def test_an_assertion_swallowed_in_del_never_passes(judge: CodeJudge) -> None:
    tests = "class _Late:\n    def __del__(self):\n        assert total([5]) == 6\n_Late()\n"
    decided, acceptable, reason = await _run(judge, RIGHT, tests=tests)
    assert decided and not acceptable, reason


async def test_rebinding_a_builtin_does_not_reach_the_checks(judge: CodeJudge) -> None:
    answer = (
        "```python\nimport builtins\nif True:\n    builtins.sorted = lambda xs: [1, 2]\n"
        "def total(xs):\n    return 0\n```"
    )
    tests = "assert sorted([total([1, 2])]) == [1, 2]\n"
    decided, acceptable, reason = await _run(judge, answer, tests=tests)
    assert decided and not acceptable, reason


async def test_a_refusing_sandbox_leaves_the_verdict_undecided(
    judge: CodeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = SandboxResult("error", None, 0.1, "sandbox refused: ...", "audit-hook,own-uid", True)
    monkeypatch.setattr(code_module, "run_python", lambda source, limits: refused)
    decided, _, reason = await _run(judge, RIGHT)
    assert not decided and "could not run" in reason


async def test_caller_tests_take_precedence(judge: CodeJudge) -> None:
    assert (await _run(judge, RIGHT, tests="assert total([5]) == 5"))[:2] == (True, True)
    assert (await _run(judge, RIGHT, tests="assert total([5]) == 6"))[:2] == (True, False)


async def test_expected_exceptions_and_literal_output(judge: CodeJudge) -> None:
    prompt = (
        ">>> half(3)\n1.5\n>>> half('x')\nTraceback (most recent call last):\n...\nTypeError: no\n"
        ">>> pair()\n('a', \"b\")\n"
    )
    answer = "def half(x):\n    return x / 2\n\ndef pair():\n    return ('a', 'b')\n"
    verdict = await judge.judge(JudgeCase(prompt, answer))
    assert verdict.decided and verdict.acceptable, verdict.reason
    wrong = answer.replace("x / 2", "x // 2")
    assert not (await judge.judge(JudgeCase(prompt, wrong))).acceptable


async def test_undecided_with_nothing_to_run(judge: CodeJudge) -> None:
    verdict = await judge.judge(JudgeCase("Write a sorting function.", RIGHT))
    assert not verdict.decided
    only_setup = await judge.judge(JudgeCase(">>> x = 1\n", RIGHT))
    assert not only_setup.decided


async def test_timeout_is_not_acceptable() -> None:
    quick = CodeJudge(sandbox_limits(Limits(timeout_seconds=1.0, cpu_seconds=1)))
    answer = "```python\ndef total(xs):\n    while True:\n        pass\n```"
    verdict = await quick.judge(JudgeCase(PROMPT, answer))
    assert verdict.decided and not verdict.acceptable and "timed out" in verdict.reason


async def test_the_event_loop_keeps_running_during_a_run(judge: CodeJudge) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await _run(judge, "```python\nimport time\ndef total(xs):\n    time.sleep(0.5)\n```")
    elapsed = time.monotonic() - started
    task.cancel()
    # A blocked loop would tick once or twice over the whole run.
    assert elapsed >= 0.5 and ticks >= 10
