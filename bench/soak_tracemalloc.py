"""The real router under a memory watch, for hunting a leak the soak found.

``python -m bench.soak_tracemalloc --snapshot-dir DIR --interval S [--trace] <router_svc
arguments>`` runs ``router_svc``'s own ``main`` with the remaining arguments while a daemon
thread writes, every ``S`` seconds:

- ``DIR/malloc.tsv``: glibc's ``mallinfo2`` (heap bytes in use by C ``malloc`` callers, bytes
  free inside the heap, mmapped blocks) beside the RSS. C-level growth (gRPC core, protobuf's
  upb arenas) shows in the bytes in use; fragmentation in the free bytes.
- with ``--trace``: ``DIR/tracemalloc-NNN.txt``, the traced Python heap and the 25 source lines
  whose allocations grew most since the first snapshot (taken one interval in, after the
  warm-up). Tracing slows the router down several times over: use it to find where memory
  goes, not to measure latency.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from router_svc.__main__ import main as router_main

TOP_LINES = 25
_NOISE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33 and later)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> Any:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _trace_growth(directory: Path, number: int, baseline: tracemalloc.Snapshot) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(_NOISE)
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced {current / 1e6:.2f} MB (peak {peak / 1e6:.2f} MB), growth since first:"]
    lines += [str(stat) for stat in snapshot.compare_to(baseline, "lineno")[:TOP_LINES]]
    (directory / f"tracemalloc-{number:03d}.txt").write_text("\n".join(lines) + "\n")


def watch(directory: Path, interval: float, trace: bool) -> None:
    """Write the malloc figures (and the traced growth) every ``interval`` seconds."""
    mallinfo = _mallinfo()
    table = directory / "malloc.tsv"
    table.write_text("seconds\trss_kib\tin_use_kib\tfree_kib\tmmapped_kib\n")
    started = time.monotonic()
    baseline: tracemalloc.Snapshot | None = None
    number = 0
    while True:
        time.sleep(interval)
        info = mallinfo()
        with table.open("a") as out:
            out.write(
                f"{time.monotonic() - started:.0f}\t{_rss_kib()}\t{info.uordblks // 1024}\t"
                f"{info.fordblks // 1024}\t{info.hblkhd // 1024}\n"
            )
        if not trace:
            continue
        if baseline is None:
            baseline = tracemalloc.take_snapshot().filter_traces(_NOISE)
            continue
        number += 1
        _trace_growth(directory, number, baseline)


def main(argv: list[str] | None = None) -> int:
    """Watch, and run the router with the other arguments."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak_tracemalloc")
    parser.add_argument("--snapshot-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--trace", action="store_true", help="also trace Python allocations")
    args, router_args = parser.parse_known_args(argv)
    if args.trace:
        tracemalloc.start(1)
    threading.Thread(
        target=watch,
        args=(args.snapshot_dir, args.interval, args.trace),
        name="memory-watch",
        daemon=True,
    ).start()
    return router_main(router_args)


if __name__ == "__main__":
    sys.exit(main())
