"""Lint and render a Helm chart offline with helm-python-sdk; prints JSON on stdout.

Runs in .venv-deploy: ``python render_chart.py CHART [-f VALUES]... [--set-json JSON]
[--release NAME] [--namespace NS] [--kube-version V]``. Output:
``{"lint": {...}, "values": {...}, "manifests": {"<template path>": "<yaml>"}}``. A render or
schema error exits 2 with the message on stderr, so callers can assert on refusals too.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import helm_python as helm
import yaml


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's -f semantics: maps merge key by key, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def main() -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--set-json", default="{}")
    parser.add_argument("--release", default="tierroute")
    parser.add_argument("--namespace", default="tierroute")
    parser.add_argument("--kube-version", default="v1.31.0")
    parser.add_argument("--no-lint", action="store_true", help="render only (faster)")
    args = parser.parse_args()

    values: dict[str, Any] = {}
    for path in args.values:
        with open(path, encoding="utf-8") as handle:
            values = merge(values, yaml.safe_load(handle) or {})
    values = merge(values, json.loads(args.set_json))
    # Strict lint: warnings count as errors; the caller asserts on the messages.
    report = (
        {}
        if args.no_lint
        else helm.lint(
            args.chart,
            values,
            strict=True,
            namespace=args.namespace,
            kube_version=args.kube_version,
        )
    )
    try:
        with helm.Chart.load(args.chart) as chart:
            manifests = chart.render(
                values, name=args.release, namespace=args.namespace, is_install=True
            )
            merged = chart.merge_values(values)
    except helm.HelmError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    json.dump({"lint": report, "values": merged, "manifests": manifests}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
