"""``VllmEngine.shutdown`` stops AsyncLLM's output handler before the engine core.

Left running while the core stops, the handler reads the closed output socket as a dead
engine and logs an ``EngineDeadError`` traceback: on some stops, depending on how fast the
core goes. A fake ``AsyncLLM`` makes that order observable every time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from model_svc.config import EngineSettings
from model_svc.engines.vllm_engine import VllmEngine


class FakeAsyncLLM:
    """The parts of ``AsyncLLM`` shutdown touches: an output handler task and ``shutdown``."""

    errored = False

    def __init__(self) -> None:
        self.core_alive = True
        self.handler_failures: list[str] = []
        self.handler_running_when_core_stopped: bool | None = None
        self.output_handler = asyncio.get_running_loop().create_task(self._handle())

    async def _handle(self) -> None:
        while True:
            if not self.core_alive:
                # What vLLM's handler does when the core's socket goes away under it.
                self.handler_failures.append("EngineDeadError: AsyncLLM output_handler failed")
                return
            await asyncio.sleep(0.005)

    def shutdown(self, timeout: float | None = None) -> None:
        self.handler_running_when_core_stopped = not self.output_handler.done()
        self.core_alive = False
        time.sleep(0.1)  # the core's teardown; the loop keeps running meanwhile


async def test_the_output_handler_stops_before_the_engine_core() -> None:
    engine = VllmEngine(EngineSettings(), Path("unused"), "fake")
    fake = FakeAsyncLLM()
    engine._llm = fake  # type: ignore[assignment]
    await asyncio.sleep(0.02)  # the handler is polling, as after the first request
    await engine.shutdown()
    await asyncio.sleep(0.05)
    assert fake.handler_running_when_core_stopped is False
    assert fake.handler_failures == []
    assert not engine.is_alive()


async def test_shutdown_before_any_request_has_no_handler_to_stop() -> None:
    engine = VllmEngine(EngineSettings(), Path("unused"), "fake")
    fake = FakeAsyncLLM()
    fake.output_handler.cancel()
    engine._llm = fake  # type: ignore[assignment]
    await engine.shutdown()
    assert fake.handler_failures == []
