"""``tierroute up``: call hints only for a platform that stays up, never for the demo."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

import tierroute_tools.platform as platform_module
from tierroute_tools.cli import build_parser
from tierroute_tools.commands import up


class FakePlatform:
    """Stands in for :class:`LocalPlatform`: starts nothing, records its stop."""

    stopped = False

    def __init__(self, options: Any) -> None:
        self.tiers = {"small": None, "large": None}
        self.router_address = "127.0.0.1:50051"
        self.http_url = "http://127.0.0.1:8080"

    def start(self, log: Any) -> None:
        log("started")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        FakePlatform.stopped = True


@pytest.fixture
def fake_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakePlatform.stopped = False
    (tmp_path / "run").mkdir()
    monkeypatch.setattr(platform_module, "LocalPlatform", FakePlatform)
    monkeypatch.setenv("TIERROUTE_CACHE_DIR", str(tmp_path))
    # `up` makes SIGTERM end it like Ctrl-C; keep the test process's own handler.
    monkeypatch.setattr(signal, "signal", lambda *args: None)


async def _no_rows(address: str, args: Any) -> list[Any]:
    return []


async def _no_quality(*args: Any) -> None:
    return None


def test_the_demo_prints_no_hints_for_the_platform_it_stops(
    fake_platform: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(up, "_replay", _no_rows)
    monkeypatch.setattr(up, "_print_quality", _no_quality)
    args = build_parser().parse_args(["up", "--demo", "--no-prepare"])
    args.func(args)
    out = capsys.readouterr().out
    assert "platform up in" in out  # it did run
    assert "ask:" not in out and "curl:" not in out
    assert FakePlatform.stopped


def test_a_platform_left_running_prints_how_to_call_it(
    fake_platform: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)
    args = build_parser().parse_args(["up", "--no-prepare"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ask:  .venv/bin/tierroute ask --router 127.0.0.1:50051" in out
    assert "curl: curl -s http://127.0.0.1:8080/v1/chat/completions" in out
    assert out.index("ask:") < out.index("platform running; Ctrl-C stops it")
