"""Progress reporting for model preparation: stages and byte counts, as plain text lines.

Plain lines (not a redrawn bar) so the output stays readable in CI logs and in ``make`` output.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """Receives what model preparation is doing."""

    def stage(self, tier: str, message: str) -> None:
        """A new step began (download, assemble, convert, done)."""

    def advance(self, tier: str, done: int, total: int) -> None:
        """``done`` of ``total`` bytes of the current step are processed."""


class TextProgress:
    """Writes stages and every 25% of a byte-counting step, with elapsed seconds."""

    def __init__(self, stream: TextIO | None = None, step_percent: int = 25) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._step = step_percent
        self._start = time.monotonic()
        self._last_percent: dict[str, int] = {}

    def _write(self, tier: str, message: str) -> None:
        elapsed = time.monotonic() - self._start
        print(f"[{elapsed:6.1f}s] {tier}: {message}", file=self._stream, flush=True)

    def stage(self, tier: str, message: str) -> None:
        """Print the stage and reset the byte counter of ``tier``."""
        self._last_percent[tier] = -1
        self._write(tier, message)

    def advance(self, tier: str, done: int, total: int) -> None:
        """Print when a new multiple of ``step_percent`` is reached."""
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        bucket = percent - percent % self._step
        if bucket > self._last_percent.get(tier, -1):
            self._last_percent[tier] = bucket
            self._write(tier, f"{bucket:3d}% ({done / 1e6:,.0f} of {total / 1e6:,.0f} MB)")


class SilentProgress:
    """Reports nothing (library use and tests)."""

    def stage(self, tier: str, message: str) -> None:
        """Ignore."""

    def advance(self, tier: str, done: int, total: int) -> None:
        """Ignore."""
