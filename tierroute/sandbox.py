"""Run untrusted Python (model-written code and its tests) in a bounded, throw-away sandbox.

Each run gets a fresh temporary working directory (removed afterwards), a scrubbed environment,
and three processes: a small launcher started with ``python -I -S``, an init that waits for the
program, and the program itself. The launcher tries to put itself into new namespaces with
``unshare(2)`` (through ``ctypes``: ``os.unshare`` arrives only in Python 3.12):

- network: a fresh network namespace holds nothing but a loopback that is down, so no address
  (not even the parent's ``127.0.0.1``) can be reached;
- pid: the init is PID 1 of a new PID namespace, so when it dies (normal end or the parent's
  kill of the process group on timeout) the kernel kills every process the program left behind,
  even those that called ``setsid()``.

Tried in order: ``netns+pidns`` and ``netns`` (need root's ``CAP_SYS_ADMIN``), then the same in a
new user namespace (unprivileged users, where the kernel allows it).

Under root the program also drops to a throw-away uid (random, used by nothing else), so it
cannot write the repository, signal the caller or other sandboxes, and ``RLIMIT_NPROC`` bounds
its processes alone (root ignores that limit). That needs an interpreter every user can read:
the project's own, else the system ``python3``.

The sandbox never weakens silently. :class:`MinimumIsolation` (``Limits.minimum``; default:
network and PID namespaces and a throw-away uid) is checked by the launcher after it tried
everything and before the program starts: below it the program does not run and the result is
an ``error`` with ``refused`` set (:func:`require_minimum` turns that into
:class:`SandboxRefusedError` for a caller that should stop rather than score). Machines that
cannot provide it (no root, no ``CAP_SETUID``, user namespaces disabled) must opt out explicitly
(``Limits(minimum=NO_MINIMUM)``); every result then lists in ``below_default`` what of the
default minimum it lacked, so the opt-out shows in whatever records it. Under such an opt-out
and without a network namespace the program runs behind a Python audit hook that refuses
sockets, subprocesses and ``ctypes`` (``audit-hook``): that stops ordinary code but not a
determined attacker; for a caller other than root no uid is dropped and ``RLIMIT_NPROC`` is not
set (it would count the caller's own processes).

In the program: ``RLIMIT_CPU``, ``RLIMIT_AS``/``RLIMIT_DATA``, ``RLIMIT_FSIZE`` (which also
bounds what it writes to stderr), ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0`` and
``PR_SET_NO_NEW_PRIVS``; the parent adds a wall-clock timeout and kills the process group.

The limits are set by the launcher rather than a ``preexec_fn`` because ``preexec_fn`` is not
safe in a process with threads (the evaluation scores answers from a thread pool).

The result's ``isolation`` names what applied: ``"<network>,<user>"``. Network is one of
``netns+pidns``, ``netns``, ``userns+netns+pidns``, ``userns+netns`` or ``audit-hook``; with
``Limits(network=True)`` it is ``network-allowed`` (``+pidns`` or ``+userns+pidns`` where
possible). User is one of ``throwaway-uid``, ``root`` or ``own-uid``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from tierroute.sandbox_isolation import (
    DEFAULT_MINIMUM,
    NO_MINIMUM,
    MinimumIsolation,
    SandboxRefusedError,
    refusal,
    required_net,
)
from tierroute.sandbox_launcher import GUARD, LAUNCHER, REFUSED_EXIT

__all__ = [
    "DEFAULT_MINIMUM",
    "NO_MINIMUM",
    "Limits",
    "MinimumIsolation",
    "SandboxRefusedError",
    "SandboxResult",
    "network_isolation_available",
    "require_minimum",
    "run_python",
]

MIB = 1024 * 1024

Status = Literal["passed", "failed", "timeout", "error"]

DETAIL_CHARS = 2000
"""How much of the end of the program's stderr a result keeps."""

CLONE_NEWNS_FLAGS = {"user": 0x10000000, "net": 0x40000000, "pid": 0x20000000}
"""``unshare(2)`` flags (``CLONE_NEWUSER``, ``CLONE_NEWNET``, ``CLONE_NEWPID``)."""

NAMESPACE_PLANS: tuple[tuple[str, int], ...] = (
    ("netns+pidns", CLONE_NEWNS_FLAGS["net"] | CLONE_NEWNS_FLAGS["pid"]),
    ("netns", CLONE_NEWNS_FLAGS["net"]),
    ("userns+netns+pidns", sum(CLONE_NEWNS_FLAGS.values())),
    ("userns+netns", CLONE_NEWNS_FLAGS["user"] | CLONE_NEWNS_FLAGS["net"]),
)
"""Namespace sets tried in order, strongest first; the first that ``unshare`` accepts applies."""

OPEN_NETWORK_PLANS: tuple[tuple[str, int], ...] = (
    ("network-allowed+pidns", CLONE_NEWNS_FLAGS["pid"]),
    ("network-allowed+userns+pidns", CLONE_NEWNS_FLAGS["user"] | CLONE_NEWNS_FLAGS["pid"]),
)
"""With the network allowed, only a PID namespace is tried (so nothing outlives the run)."""

THROWAWAY_UID_BASE = 1_500_000_000
"""Throw-away uids are drawn above this (far from any real account or container id map)."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use."""

    timeout_seconds: float = 10.0
    """Wall-clock seconds before the whole process group is killed."""
    cpu_seconds: int = 10
    """CPU seconds (``RLIMIT_CPU``; SIGXCPU at this, SIGKILL one second later)."""
    memory_bytes: int = 512 * MIB
    """Address space (``RLIMIT_AS`` and ``RLIMIT_DATA``), bytes."""
    file_bytes: int = 1 * MIB
    """Largest file the program may write (``RLIMIT_FSIZE``), bytes; stderr included."""
    open_files: int = 64
    """Open file descriptors (``RLIMIT_NOFILE``)."""
    network: bool = False
    """Allow the network (no network namespace, no audit hook)."""
    processes: int = 32
    """Processes and threads of the throw-away uid (``RLIMIT_NPROC``; applied only under root,
    where the program runs as a uid of its own)."""
    minimum: MinimumIsolation = DEFAULT_MINIMUM
    """Below this the program does not run (``NO_MINIMUM``: the explicit opt-out)."""


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended.

    ``failed``: the program ran and raised, failed an assertion, exited non-zero or was killed
    by a signal; ``timeout``: the wall clock or the CPU limit ran out; ``error``: the sandbox
    itself could not run it.
    """

    status: Status
    returncode: int | None
    """The program's exit code, minus the signal number if one killed it; None on timeout or
    error."""
    seconds: float
    """Wall-clock seconds of the whole run (start-up included)."""
    detail: str
    """The end of the program's stderr (at most ``DETAIL_CHARS``), or what went wrong."""
    isolation: str
    """What applied: ``"<network>,<user>"`` (see the module docstring)."""
    refused: bool = False
    """The program did not run: the isolation here is below ``Limits.minimum``."""
    below_default: tuple[str, ...] = ()
    """What of the default minimum this run lacked (``netns``, ``pidns``, ``throwaway-uid``);
    non-empty only under an opt-out of the minimum."""

    @property
    def passed(self) -> bool:
        """True when the program ran to the end and exited 0."""
        return self.status == "passed"


def run_python(source: str, *, limits: Limits = Limits()) -> SandboxResult:
    """Run ``source`` as ``__main__`` in a fresh sandbox and report how it ended."""
    return _run(source, limits, namespaces=True)


def network_isolation_available() -> bool:
    """True when sandboxed programs here get a network namespace of their own."""
    result = run_python("pass", limits=Limits(timeout_seconds=20.0, minimum=NO_MINIMUM))
    return result.passed and "netns" in result.isolation.split(",")[0]


def require_minimum(limits: Limits = Limits()) -> SandboxResult:
    """Run an empty program under ``limits``; raise :class:`SandboxRefusedError` if refused.

    For a caller that should stop with a clear error before scoring anything, rather than
    record every answer as a sandbox error.
    """
    probe = replace(limits, timeout_seconds=max(limits.timeout_seconds, 20.0))
    result = run_python("pass", limits=probe)
    if result.refused:
        raise SandboxRefusedError(result.detail)
    return result


def _run(
    source: str,
    limits: Limits,
    *,
    namespaces: bool,
    plans: tuple[tuple[str, int], ...] | None = None,
    throwaway_uid: bool = True,
) -> SandboxResult:
    """``run_python``; the keywords take isolation away so its absence can be tested where it
    works (no namespaces, only the given ``plans``, no throw-away uid)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tierroute-sandbox-"))
    read_fd, write_fd = os.pipe()
    try:
        program = workdir / "main.py"
        program.write_text(source, encoding="utf-8")
        guard = workdir / "_guard.py"
        guard.write_text(GUARD, encoding="utf-8")
        python, uid = _program_interpreter_and_uid(workdir)
        uid = uid if throwaway_uid else None
        if uid is not None:
            for path in (workdir, program, guard):
                os.chown(path, uid, uid)
        config = {
            "status_fd": write_fd,
            "network": limits.network,
            "plans": _plans(limits, namespaces) if plans is None else plans,
            "uid": uid,
            "python": python,
            "program": str(program),
            "guard": str(guard),
            "cpu_seconds": limits.cpu_seconds,
            "rlimits": _rlimits(limits, uid is not None),
            "required_net": required_net(limits.minimum, network=limits.network),
            "required_user": "throwaway-uid" if limits.minimum.throwaway_uid else None,
            "refused_exit": REFUSED_EXIT,
        }
        with tempfile.TemporaryFile() as stderr:
            timed_out, error = _launch(config, workdir, stderr, limits.timeout_seconds, write_fd)
            os.close(write_fd)
            write_fd = -1
            report = _read_all(read_fd)
            detail = _tail(stderr)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        _remove_tree(workdir)
    result = _result(report, timed_out, error, detail, time.monotonic() - started)
    if result.refused:
        return replace(result, detail=refusal(result.isolation, limits.minimum, limits.network))
    below = DEFAULT_MINIMUM.missing(result.isolation, network=limits.network)
    return replace(result, below_default=below) if below else result


def _launch(
    config: dict[str, Any], workdir: Path, stderr: Any, timeout: float, status_fd: int
) -> tuple[bool, str]:
    """Start the launcher, wait up to ``timeout``, then kill its whole process group."""
    env = {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    try:
        # The launcher runs with the parent's rights and reads only the stdlib.
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, json.dumps(config)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            pass_fds=(status_fd,),
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"could not start the sandbox: {exc}"
    timed_out = False
    try:
        # The launcher waits for init, which waits for the program.
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Whatever the program left behind goes too (the PID namespace, when there is one,
        # already took everything down with its init).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return timed_out, ""


def _plans(limits: Limits, namespaces: bool) -> tuple[tuple[str, int], ...]:
    if not namespaces:
        return ()
    return OPEN_NETWORK_PLANS if limits.network else NAMESPACE_PLANS


def _rlimits(limits: Limits, own_uid: bool) -> list[tuple[str, int]]:
    rlimits = [
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_DATA", limits.memory_bytes),
        ("RLIMIT_FSIZE", limits.file_bytes),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_CORE", 0),
    ]
    if own_uid:
        # Counted per uid: meaningful only when the program has a uid of its own.
        rlimits.append(("RLIMIT_NPROC", limits.processes))
    return rlimits


def _program_interpreter_and_uid(workdir: Path) -> tuple[str, int | None]:
    """The interpreter for the program and, under root, a throw-away uid to run it as.

    The uid is used only where it can reach both the interpreter and the working directory.
    """
    ours = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if os.geteuid() != 0 or not _world_readable(str(workdir.parent)):
        return ours, None
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(ours, sysconfig.get_paths()["stdlib"])]
    for name in (minor, "python3"):
        found = shutil.which(name, path=os.defpath)
        if found:
            real = os.path.realpath(found)
            candidates.append((real, str(Path(real).parents[1] / "lib" / Path(real).name)))
    for python, stdlib in candidates:
        if _world_readable(python, executable=True) and _world_readable(stdlib):
            return python, THROWAWAY_UID_BASE + secrets.randbelow(100_000_000)
    return ours, None


def _world_readable(path: str, *, executable: bool = False) -> bool:
    """True when a user with no groups can reach ``path`` (and run it if ``executable``)."""
    target = Path(path)
    try:
        for parent in reversed(target.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(target).st_mode
    except OSError:
        return False
    needed = stat.S_IROTH | (stat.S_IXOTH if executable or target.is_dir() else 0)
    return mode & needed == needed


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _tail(stream: Any) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - 4 * DETAIL_CHARS))
    text: str = stream.read().decode("utf-8", "replace")
    return text[-DETAIL_CHARS:]


def _remove_tree(path: Path) -> None:
    """Remove ``path`` even where the program took the permission bits off its directories."""

    def open_up(directory: str) -> None:
        os.chmod(directory, stat.S_IRWXU)
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                open_up(entry.path)

    with contextlib.suppress(OSError):
        open_up(str(path))
    shutil.rmtree(path, ignore_errors=True)


def _result(report: str, timed_out: bool, error: str, detail: str, seconds: float) -> SandboxResult:
    lines = _report_lines(report.splitlines())
    isolation = lines.get("isolation", "unknown")
    if error:
        return SandboxResult("error", None, seconds, error, isolation)
    if timed_out:
        return SandboxResult("timeout", None, seconds, detail, isolation)
    if "error" in lines:
        return SandboxResult("error", None, seconds, f"sandbox: {lines['error']}", isolation)
    if "refused" in lines:
        return SandboxResult("error", None, seconds, "", isolation, refused=True)
    if "wait" not in lines:
        return SandboxResult("error", None, seconds, detail or "the sandbox ended early", isolation)
    wait_status = int(lines["wait"])
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        if signum == signal.SIGXCPU:
            return SandboxResult(
                "timeout", None, seconds, "CPU limit reached\n" + detail, isolation
            )
        return SandboxResult("failed", -signum, seconds, detail, isolation)
    code = os.waitstatus_to_exitcode(wait_status)
    return SandboxResult("passed" if code == 0 else "failed", code, seconds, detail, isolation)


def _report_lines(lines: Sequence[str]) -> dict[str, str]:
    """The launcher's status lines (``isolation ...``, ``refused ...``, ``wait N``, ``error ...``)
    by key."""
    report = {}
    for line in lines:
        key, _, value = line.partition(" ")
        report[key] = value
    return report
