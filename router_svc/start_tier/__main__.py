"""``python -m router_svc.start_tier reset --state FILE``: forget a persisted start-tier model.

The router reads the file at start, so reset it while the router is stopped (or set
``start_tier.reset: true`` for one start).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from router_svc.start_tier.store import FileStore


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m router_svc.start_tier", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    reset = commands.add_parser("reset", help="delete the persisted model")
    reset.add_argument("--state", type=Path, required=True, help="start_tier.state_path")
    show = commands.add_parser("show", help="print the persisted model's version and count")
    show.add_argument("--state", type=Path, required=True, help="start_tier.state_path")
    args = parser.parse_args(argv)
    store = FileStore(args.state)
    if args.command == "reset":
        existed = args.state.exists()
        store.clear()
        print(f"start-tier model {'forgotten' if existed else 'was not saved'}: {args.state}")
        return 0
    state = store.load()
    if state is None:
        print(f"no start-tier model at {args.state}")
        return 1
    print(f"version {state.version}, trained on {state.trained} outcomes, {state.signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
