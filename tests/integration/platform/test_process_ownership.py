"""Processes a command starts never outlive it, and write nothing under ``$HOME``.

``tierroute eval live`` (which starts its own platform) is run for real as a child process,
over scripted model services (the real ``ModelServer`` on a scripted engine, so no vLLM) and
the real router with its ONNX classifier. It is stopped with SIGTERM, or killed with SIGKILL,
in the middle of its run; every process it started must be gone soon after, and the empty
``$HOME`` it ran with must still be empty. A child of the launcher that is SIGKILLed takes its
own children with it (what a model service's vLLM ``EngineCore`` relies on; the real engine
is checked in ``tests/integration/model_svc/test_engine_lifecycle.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tierroute.launch import ServiceProcess
from tierroute.paths import default_cache_dir

ROOT = Path(__file__).resolve().parents[3]
START_SECONDS = 120.0
GONE_SECONDS = 40.0
"""Router drain (its 10 s grace) plus the scripted tiers' own, with room for a busy machine."""

# Runs `tierroute eval live` with the `pair` preset served by scripted tiers (slow tokens,
# so the run is still going when the test signals it).
DRIVER = textwrap.dedent(
    """
    import sys
    import tierroute_tools.platform as platform
    from tierroute_tools.cli import main

    scripted = ("--token-delay", "0.5", "--answer", "The answer is 4")
    platform.PRESETS["pair"] = (  # type: ignore[index]
        platform.TierSpec("small", "0", module="model_svc.scripted_server", args=scripted),
        platform.TierSpec("large", "1", module="model_svc.scripted_server", args=scripted),
    )
    sys.exit(main(["eval", "live", *sys.argv[1:]]))
    """
)


@dataclass
class Run:
    """A running ``eval live``: its process, its output, the services it started."""

    process: subprocess.Popen[bytes]
    output: Path
    home: Path

    def descendants(self) -> set[int]:
        """Every live process below the driver (services and their own children)."""
        return _descendants(self.process.pid)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found |= {int(p) for p in task.read_text().split()}
        except OSError:
            continue
    return found


def _descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {pid for pid in pids if _alive(pid)}
        if not left:
            return set()
        time.sleep(0.2)
    return {pid for pid in pids if _alive(pid)}


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored; the command must see its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def eval_live(tmp_path: Path) -> Iterator[Run]:
    """``tierroute eval live`` started with an empty ``$HOME``, running its first requests."""
    classifier = default_cache_dir() / "classifier"
    if not classifier.is_dir():
        pytest.fail(f"the router's classifier is not built in {classifier}: run `make prepare`")
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "items.jsonl"
    rows = [
        {"id": f"q{n}", "prompt": f"What is {n} + 2?", "answer": str(n + 2), "kind": "number"}
        for n in range(8)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    output = tmp_path / "eval.log"
    # The environment of a fresh login: only HOME and PATH, nothing that points caches anywhere.
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "TIERROUTE_CACHE_DIR": str(default_cache_dir()),
    }
    if "PYTHONPATH" in os.environ:  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(driver), str(data), "--out-dir", str(tmp_path / "out")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )
    run = Run(process, output, home)
    try:
        _wait_running(run, tmp_path / "out" / "records.partial.jsonl")
        yield run
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pid in run.descendants():
            with_suppressed_kill(pid)


def with_suppressed_kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _wait_running(run: Run, records: Path) -> None:
    """Until the router serves and requests are in flight (three services below the driver)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            pytest.fail(f"eval live exited {run.process.returncode}:\n{run.output.read_text()}")
        text = run.output.read_text(errors="replace")
        if "router serving on" in text and len(run.descendants()) >= 3:
            time.sleep(1.0)  # the first requests reach the tiers
            return
        time.sleep(0.2)
    pytest.fail(f"eval live did not start its platform:\n{run.output.read_text()[-3000:]}")


def _home_files(home: Path) -> list[str]:
    return sorted(str(path.relative_to(home)) for path in home.rglob("*"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_eval_live_started(eval_live: Run, signum: int) -> None:
    services = eval_live.descendants()
    assert len(services) >= 3, "two tiers and the router"
    eval_live.process.send_signal(signum)
    code = eval_live.process.wait(timeout=GONE_SECONDS + 30)
    left = _wait_gone(services, 5.0)
    assert not left, f"still running after {signum}: {left}\n{eval_live.output.read_text()}"
    assert code == 130, eval_live.output.read_text()[-3000:]
    assert _home_files(eval_live.home) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_services_die_with_eval_live_even_when_it_is_sigkilled(eval_live: Run) -> None:
    services = eval_live.descendants()
    assert len(services) >= 3
    eval_live.process.kill()
    eval_live.process.wait()
    left = _wait_gone(services, GONE_SECONDS)
    assert not left, f"orphaned by a SIGKILLed eval live: {left}"
    assert _home_files(eval_live.home) == []


SPAWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path

    # A service that starts a worker of its own, as a model service starts vLLM's EngineCore.
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(sys.argv[1]).write_text(str(worker.pid))
    time.sleep(600)
    """
)


@pytest.mark.timeout(60)
def test_a_service_sigkilled_takes_its_own_children_with_it(tmp_path: Path) -> None:
    (tmp_path / "spawner.py").write_text(SPAWNER)
    pid_file = tmp_path / "worker.pid"
    service = ServiceProcess("spawner", [str(pid_file)], cwd=tmp_path, metrics_port=-1)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, service.output_tail()
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert _alive(worker)
        os.kill(service.pid, signal.SIGKILL)  # not through stop(): someone else killed it
        assert not _wait_gone({worker}, 10.0), "the service's worker outlived it"
    finally:
        service.stop(grace_seconds=1)
