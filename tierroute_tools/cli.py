"""The ``tierroute`` command: one entry point, sub-commands from each area, imported lazily.

Each sub-command module exposes ``register(subparsers)``; heavy imports (vLLM, torch,
onnxruntime) happen inside the command functions, so ``tierroute --help`` stays fast.

Before any command runs, the caches of the libraries it (or a process it starts) loads are
pointed inside the project (:mod:`tierroute.runtime_env`). Ctrl-C, and SIGTERM in the commands
that start a platform, exit with 130 after the command has stopped what it started.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tierroute.runtime_env import contain_caches

INTERRUPTED_EXIT_CODE = 130
"""Exit code of a command stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT)."""

# Modules that each add one sub-command (``register(subparsers)``), in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "tierroute_tools.commands.up",
    "tierroute_tools.commands.ask",
    "tierroute_tools.commands.quality",
    "tierroute_tools.commands.models",
    "tierroute_tools.commands.classifier",
    "tierroute_tools.commands.eval",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="tierroute", description="tierroute: LLM inference with tiered model routing."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    contain_caches()
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        # The command's own context managers have stopped its processes on the way out.
        print("tierroute: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
