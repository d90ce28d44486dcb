"""Code tasks: HumanEval loads offline, every reference solution passes, answers are extracted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.sandbox_privileges import sandbox_limits
from tierroute.errors import InvalidArgumentError
from tierroute.sandbox import Limits, SandboxResult
from tierroute_tools.evaluation.code_tasks import (
    CHAT_INSTRUCTION,
    STOP_SEQUENCES,
    TASK_SETS,
    CodeTask,
    build_prompt,
    checks,
    extract_code,
    load_tasks,
    program,
    score,
)

LIMITS = sandbox_limits(Limits(timeout_seconds=10.0))


@pytest.fixture(scope="module")
def tasks() -> dict[str, CodeTask]:
    return {task.id: task for task in load_tasks("humaneval")}


def test_humaneval_loads_whole_and_in_order(tasks: dict[str, CodeTask]) -> None:
    assert TASK_SETS == ("humaneval",)
    assert list(tasks) == [f"HumanEval/{i}" for i in range(164)]
    first = tasks["HumanEval/0"]
    assert first.source == "humaneval" and first.entry_point == "has_close_elements"
    assert first.prompt.startswith("from typing import List") and "def check(" in first.tests
    assert [t.id for t in load_tasks("humaneval", limit=3)] == [f"HumanEval/{i}" for i in range(3)]
    assert load_tasks("humaneval", limit=0) == []
    with pytest.raises(InvalidArgumentError):
        load_tasks("mbpp")
    with pytest.raises(InvalidArgumentError):
        load_tasks("humaneval", limit=-1)


def _score_all(
    tasks: list[CodeTask], completions: list[str], workers: int = 4
) -> list[SandboxResult]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pairs = zip(tasks, completions, strict=True)
        return list(pool.map(lambda pair: score(pair[0], pair[1], limits=LIMITS), pairs))


def test_every_reference_solution_passes_and_an_empty_body_fails(
    tasks: dict[str, CodeTask],
) -> None:
    # The reference body as a plain completion would give it: this checks the data, the
    # extraction of a continued body and the sandbox on all 164 problems at once.
    every = list(tasks.values())
    canonical = _score_all(every, [task.canonical for task in every])
    failing = {
        t.id: (r.status, r.detail[-300:])
        for t, r in zip(every, canonical, strict=True)
        if not r.passed
    }
    assert failing == {}
    empty = _score_all(every, ["    pass\n" for _ in every])
    assert [t.id for t, r in zip(every, empty, strict=True) if r.passed] == []


def test_prompts(tasks: dict[str, CodeTask]) -> None:
    task = tasks["HumanEval/2"]
    assert build_prompt(task) == task.prompt
    assert build_prompt(task, "completion") == task.prompt
    chat = build_prompt(task, "chat")
    assert chat.startswith(CHAT_INSTRUCTION) and task.prompt.strip() in chat
    assert chat.endswith("```")
    assert "\ndef " in STOP_SEQUENCES


def test_program_runs_the_check(tasks: dict[str, CodeTask]) -> None:
    task = tasks["HumanEval/2"]
    text = program(task, "def truncate_number(number):\n    return number % 1.0\n", "TOKEN")
    assert text.rstrip().endswith(f"_tierroute_run_checks({checks(task)!r})")
    assert checks(task).endswith("check(truncate_number)\n") and task.tests in checks(task)
    assert "'TOKEN'" in text


HAS_CLOSE_FULL = """def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False
"""

EXTRACTION_CASES = {
    "fenced full def with prose and example calls": (
        "HumanEval/0",
        "Here is the function:\n\n```python\nfrom typing import List\n\n"
        + HAS_CLOSE_FULL
        + "\n\nprint(has_close_elements([1.0, 2.0], 0.5))\n"
        "assert has_close_elements([], 1) is True\n```\n\nIt compares every pair.",
    ),
    "fenced def without the prompt's imports": ("HumanEval/0", f"```python\n{HAS_CLOSE_FULL}```"),
    "py fence, unclosed (cut at the token limit)": ("HumanEval/0", f"```py\n{HAS_CLOSE_FULL}"),
    "the defining block among several": (
        "HumanEval/0",
        f"```bash\npip install nothing\n```\n```python\nx = 1\n```\n```python\n{HAS_CLOSE_FULL}```",
    ),
    "unfenced def with a main block": (
        "HumanEval/0",
        HAS_CLOSE_FULL + '\nif __name__ == "__main__":\n    raise SystemExit(1)\n',
    ),
    "continued body that runs past the stop": (
        "HumanEval/2",
        "    return number % 1.0\n\n\ndef unused():\n    raise ValueError\n\nprint(unused())\n",
    ),
    "bare body without indentation": ("HumanEval/2", "return number - int(number)\n"),
    "def truncated mid-statement after a complete function": (
        "HumanEval/2",
        "def truncate_number(number: float) -> float:\n    return number % 1.0\n\n"
        "def helper(x):\n    return (x +",
    ),
    "a helper defined after the entry point in a chat answer": (
        "HumanEval/2",
        "```python\ndef truncate_number(number):\n    return _frac(number)\n\n"
        "def _frac(x):\n    return x - int(x)\n```",
    ),
    "the prompt's helper is kept for the check": (
        "HumanEval/38",
        "```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```",
    ),
}


@pytest.mark.parametrize("case", sorted(EXTRACTION_CASES))
def test_extraction_finds_the_code(tasks: dict[str, CodeTask], case: str) -> None:
    task_id, completion = EXTRACTION_CASES[case]
    task = tasks[task_id]
    code = extract_code(task, completion)
    assert f"def {task.entry_point}" in code
    assert "print(" not in code and "__main__" not in code
    result = score(task, completion, limits=LIMITS)
    assert result.passed, (code, result.detail)


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "I cannot help with that.",
        "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```",
        "    return not numbers\n",
        "```python\ndef some_other_name(numbers, threshold):\n    return False\n```",
        "    while True:\n        pass\n",
    ],
)
def test_wrong_or_missing_answers_fail(tasks: dict[str, CodeTask], completion: str) -> None:
    result = score(
        tasks["HumanEval/0"], completion, limits=sandbox_limits(Limits(timeout_seconds=2.0))
    )
    assert not result.passed
    assert result.status in ("failed", "timeout")


def test_extraction_keeps_definitions_and_drops_calls(tasks: dict[str, CodeTask]) -> None:
    task = tasks["HumanEval/0"]
    code = extract_code(
        task,
        "```python\nimport math\nLIMIT: int = 3\n\n@staticmethod\ndef deco():\n    pass\n\n"
        + HAS_CLOSE_FULL
        + "\nfor x in range(3):\n    print(x)\n```",
    )
    assert "import math" in code and "LIMIT: int = 3" in code
    assert "@staticmethod\ndef deco():" in code and "from typing import List" in code
    assert "for x in range" not in code
