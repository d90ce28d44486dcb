"""The ``tierroute`` command: one entry point, sub-commands from each area, imported lazily.

Each sub-command module exposes ``register(subparsers)``; heavy imports (vLLM, torch,
onnxruntime) happen inside the command functions, so ``tierroute --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
