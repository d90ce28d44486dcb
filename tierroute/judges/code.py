"""The ``code`` judge: run the candidate's code against tests, in the sandbox.

What runs: the caller's tests (:attr:`JudgeCase.tests`) when given, else the doctest-style
examples of the prompt (``>>> expression`` lines followed by the expected output). Undecided
when there is neither. The candidate's code is its last Python (or unmarked) fenced block, else
the whole answer; a last block that defines nothing (a usage example) gives way to the last one
that does. Only its top-level imports, definitions, assignments and ``if``/``try`` blocks are
kept (example calls and ``if __name__ == "__main__"`` blocks say nothing about the code and
could wait on input), and the prompt's own import lines go in front (a chat answer often
leaves out ``from typing import List``).

An example passes when its output (printed text, then the expression's ``repr``) equals the
expected text up to whitespace, or when the expected text is a Python literal equal to the value
(floats compared with a relative tolerance of 1e-6); an expected ``Traceback`` passes when the
named exception is raised.

Proof that the checks ran to the end (:mod:`tierroute.sandbox_proof`, shared with the
evaluation's scoring): after them the program writes a random per-run token to stderr, and the
run passes only when it exited 0 *and* the token is in its output, so an answer that calls
``sys.exit(0)`` (or ``os._exit(0)``) before the checks fails, and so does an assertion swallowed
in ``__del__``. Caller tests must therefore not exit either (``unittest.main()`` does; use
``unittest.main(exit=False)`` or plain asserts). The token stops accidents and shortcuts, not an
adversary who reads the program's own source: the sandbox's isolation is what bounds such code.

Each run blocks a thread, never the event loop (``asyncio.to_thread``), at most
``concurrency`` at once.
"""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass

from tierroute.judges.base import JudgeCase, Verdict, ruled, undecided
from tierroute.judges.normalise import PYTHON_FENCES, fenced_blocks
from tierroute.sandbox import Limits, SandboxResult, run_python
from tierroute.sandbox_proof import checked_program, new_token, proof_found

NAME = "code"

_PROMPT_LINE = re.compile(r"^(\s*)>>> ?(.*)$")
_CONTINUATION = re.compile(r"^\s*\.\.\.(?: (.*))?$")
_DOCSTRING_END = re.compile(r"^\s*(?:\"\"\"|''')\s*$")
_KEPT_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
    ast.If,
    ast.Try,
)

# Runs each example in the program's own namespace (so it sees the candidate's definitions).
_EXAMPLE_RUNNER = r"""
def _tierroute_run_examples(examples):
    import ast, contextlib, io, math

    def close(a, b):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(close, a, b))
        return a == b

    for index, (source, want) in enumerate(examples):
        try:
            code, is_expression = compile(source, "<example>", "eval"), True
        except SyntaxError:
            code, is_expression = compile(source, "<example>", "exec"), False
        out = io.StringIO()
        raised = None
        with contextlib.redirect_stdout(out):
            try:
                value = eval(code, globals()) if is_expression else exec(code, globals())
            except Exception as exc:
                if not want.startswith("Traceback"):
                    raise
                raised = exc
        if want.startswith("Traceback"):
            name = want.strip().splitlines()[-1].split(":")[0].strip().split(".")[-1]
            assert raised is not None and type(raised).__name__ == name, f"example {index}"
            continue
        if not want.strip():
            continue
        got = out.getvalue() + ("" if value is None else repr(value))
        if " ".join(got.split()) == " ".join(want.split()):
            continue
        try:
            expected = ast.literal_eval(want.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            expected = object()
        assert not out.getvalue() and close(value, expected), f"example {index} differs"
"""


@dataclass(frozen=True)
class Example:
    """One doctest-style example of a prompt."""

    source: str
    """The code after ``>>>`` (continuation lines joined with newlines)."""
    want: str
    """The expected output (empty for a statement with none)."""


def prompt_examples(prompt: str) -> list[Example]:
    """The ``>>>`` examples of ``prompt``, with their expected output, in order."""
    lines = prompt.splitlines()
    examples: list[Example] = []
    index = 0
    while index < len(lines):
        match = _PROMPT_LINE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent = len(match.group(1))
        source = [match.group(2)]
        index += 1
        while index < len(lines) and (cont := _CONTINUATION.match(lines[index])):
            source.append(cont.group(1) or "")
            index += 1
        want: list[str] = []
        while index < len(lines):
            line = lines[index]
            dedented = len(line) - len(line.lstrip())
            if not line.strip() or _PROMPT_LINE.match(line) or _DOCSTRING_END.match(line):
                break
            if dedented < indent:
                break
            want.append(re.sub(r"(\"\"\"|''')\s*$", "", line[indent:]).rstrip())
            index += 1
        examples.append(Example("\n".join(source), "\n".join(want).strip()))
    return examples


def candidate_code(answer: str) -> str:
    """The candidate's code: its last Python block, else the whole answer.

    A last block that defines nothing (a usage example after the solution) gives way to the
    last block that does.
    """
    blocks = [body for info, body in fenced_blocks(answer) if info in PYTHON_FENCES]
    if not blocks:
        return answer
    defining = [body for body in blocks if _defines_something(body)]
    return defining[-1] if defining else blocks[-1]


def _defines_something(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(node, definitions) for node in tree.body)


def _split_module(code: str) -> tuple[list[str], list[str]]:
    """``(future imports, kept statements)`` of ``code``; the whole code if it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return [], [code]  # runs as is and fails: a broken answer is not acceptable
    lines = code.splitlines()
    future: list[str] = []
    kept: list[str] = []
    for node in tree.body:
        if not isinstance(node, _KEPT_NODES) or _is_main_guard(node):
            continue
        decorators = getattr(node, "decorator_list", [])
        start = min([node.lineno, *(d.lineno for d in decorators)])
        text = "\n".join(lines[start - 1 : node.end_lineno])
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        (future if is_future else kept).append(text)
    return future, kept


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    names = [n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)]
    return "__name__" in names


def prompt_imports(prompt: str) -> list[str]:
    """The prompt's own top-level import lines (``import x``, ``from x import y``)."""
    found = []
    for line in prompt.splitlines():
        if not re.match(r"^(?:from\s+\S+\s+)?import\s", line):
            continue
        try:
            tree = ast.parse(line)
        except SyntaxError:
            continue
        node = tree.body[0] if len(tree.body) == 1 else None
        if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != (
            "__future__"
        ):
            found.append(line.strip())
    return found


def build_program(prompt: str, answer: str, checks: str, token: str) -> str:
    """The program the sandbox runs: imports, the candidate's code, ``checks``, the proof."""
    future, kept = _split_module(candidate_code(answer))
    code = "\n\n".join([*future, *prompt_imports(prompt), *kept])
    return checked_program(code, checks, token)


def example_checks(examples: list[Example]) -> str:
    """Python source running ``examples`` (those with an expected output count as checks)."""
    pairs = [(example.source, example.want) for example in examples]
    return f"{_EXAMPLE_RUNNER}\n_tierroute_run_examples({pairs!r})\n"


class CodeJudge:
    """Runs the caller's tests or the prompt's examples against the candidate's code."""

    name = NAME

    def __init__(self, limits: Limits | None = None, concurrency: int = 2) -> None:
        if concurrency < 1:
            raise ValueError("code judge concurrency must be >= 1")
        self._limits = limits or Limits()
        self._slots = asyncio.Semaphore(concurrency)

    async def judge(self, case: JudgeCase) -> Verdict:
        """Acceptable when every check ran to the end and passed; undecided with nothing to run."""
        if case.tests is not None and case.tests.strip():
            checks, what = case.tests, "caller's tests"
        else:
            examples = prompt_examples(case.prompt)
            if not any(example.want for example in examples):
                return undecided(NAME, "no tests and no examples with expected output to run")
            checks, what = example_checks(examples), "prompt's examples"
        token = new_token()
        source = build_program(case.prompt, case.candidate, checks, token)
        async with self._slots:
            result = await asyncio.to_thread(run_python, source, limits=self._limits)
        return _verdict(result, token, what)


def _verdict(result: SandboxResult, token: str, what: str) -> Verdict:
    if result.status == "error":
        return undecided(NAME, "the sandbox could not run the code")
    if result.status == "timeout":
        return ruled(NAME, False, f"timed out running the {what}")
    if not result.passed:
        return ruled(NAME, False, f"the {what} failed (exit {result.returncode})")
    if not proof_found(result, token):
        return ruled(NAME, False, f"exited before the {what} completed")
    return ruled(NAME, True, f"the {what} passed")
