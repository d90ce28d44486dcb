"""The real router under ``tracemalloc``, for hunting a leak the soak found.

``python -m bench.soak_tracemalloc --snapshot-dir DIR --interval S <router_svc arguments>``
starts ``tracemalloc``, then runs ``router_svc``'s own ``main`` with the remaining arguments. A
daemon thread takes a snapshot every ``S`` seconds and writes ``DIR/tracemalloc-NNN.txt``: the
traced total and the 25 source lines whose allocations grew most since the first snapshot
(taken one interval in, after the warm-up allocations). Tracing slows the router down several
times over: use it to find where memory goes, not to measure latency.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from router_svc.__main__ import main as router_main

TOP_LINES = 25
_NOISE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def watch(directory: Path, interval: float) -> None:
    """Write the allocation growth against the first snapshot every ``interval`` seconds."""
    baseline: tracemalloc.Snapshot | None = None
    number = 0
    while True:
        time.sleep(interval)
        snapshot = tracemalloc.take_snapshot().filter_traces(_NOISE)
        if baseline is None:
            baseline = snapshot
            continue
        number += 1
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"traced {current / 1e6:.2f} MB (peak {peak / 1e6:.2f} MB), growth since first:"]
        for stat in snapshot.compare_to(baseline, "lineno")[:TOP_LINES]:
            lines.append(str(stat))
        (directory / f"tracemalloc-{number:03d}.txt").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Trace, watch, and run the router with the other arguments."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak_tracemalloc")
    parser.add_argument("--snapshot-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between snapshots")
    args, router_args = parser.parse_known_args(argv)
    tracemalloc.start(1)
    threading.Thread(
        target=watch, args=(args.snapshot_dir, args.interval), name="tracemalloc", daemon=True
    ).start()
    return router_main(router_args)


if __name__ == "__main__":
    sys.exit(main())
