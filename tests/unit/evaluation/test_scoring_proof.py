"""Code scoring cannot be passed without running the tests (real sandbox, a small task).

Each shortcut below ends its program with exit status 0 (or leaves the failed assertion
unreported) while the answer is wrong; exit status alone passed every one of them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.sandbox_privileges import sandbox_limits
from tierroute.sandbox import NO_MINIMUM, Limits, SandboxRefusedError, SandboxResult
from tierroute.sandbox_proof import INCOMPLETE, PROOF_MARK, checked_program, run_checked
from tierroute_tools.evaluation import code_tasks
from tierroute_tools.evaluation.code_tasks import CodeTask, score

LIMITS = sandbox_limits(Limits(timeout_seconds=10.0))

TASK = CodeTask(
    id="proof/add",
    source="test",
    prompt='def add(a: int, b: int) -> int:\n    """The sum of a and b."""\n',
    entry_point="add",
    tests=(
        "def check(candidate):\n"
        "    assert candidate(2, 3) == 5\n"
        "    assert abs(candidate(-1, 1)) < 1e-9\n"
    ),
    canonical="    return a + b\n",
)

# The check's assertion runs in __del__, where Python prints the exception and carries on.
SWALLOWING = CodeTask(
    id="proof/swallowed",
    source="test",
    prompt=TASK.prompt,
    entry_point="add",
    tests=(
        "def check(candidate):\n"
        "    class _Late:\n"
        "        def __del__(self):\n"
        "            assert candidate(2, 3) == 5, 'wrong sum'\n"
        "    _Late()\n"
    ),
    canonical=TASK.canonical,
)

WRONG = "    return a - b\n"

SHORTCUTS = {
    "sys.exit(0) in the function": "    import sys\n    sys.exit(0)\n",
    "os._exit(0) in the function": "    import os\n    os._exit(0)\n",
    "raise SystemExit in the function": "    raise SystemExit\n",
    "raise SystemExit at module level (class body)": (
        "```python\nclass _Leave:\n    raise SystemExit\n\ndef add(a, b):\n    return a - b\n```"
    ),
    "sys.exit(0) at module level (assignment)": (
        "```python\nimport sys\n_gone = sys.exit(0)\n\ndef add(a, b):\n    return a - b\n```"
    ),
    # A trace function rebinds `check` on the line that calls it.
    "monkey-patching check": (
        "```python\nimport sys\n\n"
        "def _hook(frame, event, arg):\n"
        "    if event == 'line' and 'check' in frame.f_globals:\n"
        "        frame.f_globals['check'] = lambda candidate: None\n"
        "    return _hook\n\n"
        "_a = sys.settrace(_hook)\n"
        "_b = setattr(sys._getframe(), 'f_trace', _hook)\n\n"
        "def add(a, b):\n    return a - b\n```"
    ),
    "monkey-patching a builtin the check uses": (
        "```python\nimport builtins\n"
        "_a = setattr(builtins, 'abs', lambda x: 0)\n\n"
        "def add(a, b):\n    return 5\n```"
    ),
}


def test_the_right_answer_passes_with_the_proof() -> None:
    result = score(TASK, TASK.canonical, limits=LIMITS)
    assert result.passed, result.detail
    assert any(line.startswith(PROOF_MARK) for line in result.detail.splitlines())
    assert not score(TASK, WRONG, limits=LIMITS).passed


@pytest.mark.parametrize("case", sorted(SHORTCUTS))
def test_shortcuts_never_pass(case: str) -> None:
    result = score(TASK, SHORTCUTS[case], limits=LIMITS)
    assert not result.passed, result.detail
    assert result.status == "failed"


def test_an_assertion_swallowed_in_del_fails() -> None:
    result = score(SWALLOWING, WRONG, limits=LIMITS)
    assert not result.passed
    assert "could not raise" in result.detail and "AssertionError" in result.detail
    right = score(SWALLOWING, SWALLOWING.canonical, limits=LIMITS)
    assert right.passed, right.detail


def test_an_exit_zero_without_the_proof_says_so() -> None:
    result = run_checked("import os\n", "os._exit(0)\n", limits=LIMITS)
    assert result.status == "failed" and result.returncode == 0
    assert result.detail.startswith(INCOMPLETE)


def test_future_imports_stay_first() -> None:
    code = '"""Doc."""\nfrom __future__ import annotations\n\ndef f() -> int:\n    return 1\n'
    program = checked_program(code, "assert f() == 1\n", "TOKEN")
    assert program.startswith("from __future__ import annotations\n")
    result = run_checked(code, "assert f() == 1\n", limits=LIMITS)
    assert result.passed, result.detail


def test_scoring_below_the_minimum_isolation_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake sandbox that refuses, as on a machine without namespaces or a throw-away uid.
    def refusing(code: str, checks: str, *, limits: Limits) -> SandboxResult:
        return SandboxResult("error", None, 0.1, "sandbox refused: ...", "audit-hook,own-uid", True)

    monkeypatch.setattr(code_tasks, "run_checked", refusing)
    with pytest.raises(SandboxRefusedError, match="sandbox refused"):
        score(TASK, TASK.canonical, limits=LIMITS)


def test_an_opted_out_score_records_what_it_lacked() -> None:
    result = score(TASK, TASK.canonical, limits=replace(LIMITS, minimum=NO_MINIMUM))
    assert result.passed, result.detail
    # The result names the isolation that applied; below the default it lists what was missing.
    assert result.isolation and set(result.below_default) <= {"netns", "pidns", "throwaway-uid"}
    assert bool(result.below_default) == (result.isolation != "netns+pidns,throwaway-uid")
