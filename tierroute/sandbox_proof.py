"""Proof that a sandboxed program's checks ran to the end, shared by every scorer of code.

A run of untrusted code passes only when it exited 0 *and* wrote a random per-run token that
only the end of the checks writes. Exit status alone proves nothing: ``sys.exit(0)``,
``os._exit(0)`` or ``raise SystemExit`` anywhere before the checks (at module level or inside
the function they call) ends the program with 0 and no test run.

The program :func:`checked_program` builds is: the candidate's ``from __future__`` lines, a
prologue, the candidate's code, then one call that runs the checks. The prologue, run before any
candidate code, keeps what the end needs in a closure (the token, ``exec``, ``compile``,
``os.write``, ``os._exit``, ``gc.collect``, a copy of the builtins) and adds an audit hook that
refuses trace and profile functions (a trace function can rebind ``check`` just before it is
called, or jump over its lines) and replacing a function's ``__code__``. The checks then run in
the module's namespace with the copied builtins, so a candidate that rebinds ``abs`` or ``len``
changes its own code only. An exception Python could not raise (in ``__del__``, a weakref
callback, the garbage collector) during the checks fails the run: a check whose assertion ends
up there must not pass. After the checks, the token is written to stderr and the process ends
at once (``os._exit(0)``), so nothing the candidate registered (``atexit``, finalizers) runs.

This stops accidents and shortcuts, not an adversary who reads the program's own source or
digs the token out of the interpreter's memory: the sandbox's isolation is what bounds such code.
"""

from __future__ import annotations

import ast
import dataclasses
import secrets

from tierroute.sandbox import Limits, SandboxResult, run_python

PROOF_MARK = "tierroute-checks-done:"
"""Prefix of the stderr line that proves the checks completed (followed by the run's token)."""

INCOMPLETE = "exited before the checks completed"
"""What a result's detail starts with when the program exited 0 without the proof."""

# {token} and {mark} are filled in by `checked_program`; everything else is literal.
_PROLOGUE = r"""
def _tierroute_harness():
    import builtins, gc, os, sys
    token, mark = {token!r}, {mark!r}
    namespace = globals()
    run, build, write, finish, collect = exec, compile, os.write, os._exit, gc.collect
    clean_builtins = dict(builtins.__dict__)
    unraisable = []
    report = sys.unraisablehook

    def on_unraisable(info):
        unraisable.append(getattr(info.exc_type, "__name__", "exception"))
        report(info)

    def refuse_tampering(event, args):
        if event in ("sys.settrace", "sys.setprofile"):
            raise RuntimeError("sandbox: trace and profile functions are not allowed")
        if event == "object.__setattr__" and args[1] == "__code__":
            raise RuntimeError("sandbox: replacing a function's code is not allowed")

    sys.unraisablehook = on_unraisable
    sys.addaudithook(refuse_tampering)

    def run_checks(checks):
        namespace["__builtins__"] = clean_builtins
        run(build(checks, "<checks>", "exec"), namespace)
        collect()
        if sys.unraisablehook is not on_unraisable:
            write(2, b"\nsandbox: the program replaced sys.unraisablehook\n")
            finish(1)
        if unraisable:
            names = ", ".join(unraisable)
            message = f"\nsandbox: exceptions Python could not raise during the checks: {{names}}\n"
            write(2, message.encode())
            finish(1)
        write(2, f"\n{{mark}}{{token}}\n".encode())
        finish(0)

    return run_checks


_tierroute_run_checks = _tierroute_harness()
del _tierroute_harness
"""


def new_token() -> str:
    """A fresh random token for one run."""
    return secrets.token_hex(16)


def checked_program(code: str, checks: str, token: str) -> str:
    """The program to run: ``code``, then ``checks``, then the proof carrying ``token``."""
    future, rest = _split_future(code)
    prologue = _PROLOGUE.format(token=token, mark=PROOF_MARK)
    return "\n\n".join([*future, prologue, rest, f"_tierroute_run_checks({checks!r})\n"])


def proof_found(result: SandboxResult, token: str) -> bool:
    """True when the run exited 0 and its stderr holds the proof line for ``token``."""
    return result.passed and f"{PROOF_MARK}{token}" in result.detail.splitlines()


def run_checked(code: str, checks: str, *, limits: Limits) -> SandboxResult:
    """Run ``code`` then ``checks`` sandboxed; a pass needs exit 0 *and* the proof.

    An exit 0 without the proof comes back ``failed``, its detail starting with
    :data:`INCOMPLETE`.
    """
    token = new_token()
    result = run_python(checked_program(code, checks, token), limits=limits)
    if result.passed and not proof_found(result, token):
        return dataclasses.replace(result, status="failed", detail=f"{INCOMPLETE}\n{result.detail}")
    return result


def _split_future(code: str) -> tuple[list[str], str]:
    """``(from __future__ lines, the rest)``: those must stay first in the module."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return [], code  # runs as is and fails: a broken answer is not acceptable
    lines = code.splitlines()
    future_lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            future_lines.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    future = [lines[i] for i in sorted(future_lines)]
    rest = [line for i, line in enumerate(lines) if i not in future_lines]
    return future, "\n".join(rest)
