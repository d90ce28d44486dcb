"""Helpers of the observability tests: PromQL found in dashboards and rules, made checkable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# Grafana's variables, replaced by values Prometheus accepts: "All" of a multi-value variable
# is ".*", the interval variables become fixed durations.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$tier": ".*",
}
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
_METRIC = re.compile(r"(?<![:\w])(tierroute_(?:router|model)_[a-z_]+|DCGM_FI_[A-Z_]+)(?![:\w])")
_RECORD = re.compile(r"\b([a-z_]+:tierroute_[a-z_]+:[a-z0-9_]+)\b")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows' nested panels included, rows themselves too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of a dashboard."""
    found: list[tuple[str, str]] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"])
        assert match, f"variable {variable['name']}: unsupported query {variable['query']!r}"
        found.append((f"variable {variable['name']}", match["selector"]))
    return found


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


def metric_names(expr: str) -> set[str]:
    """Exported metric names an expression reads (histogram series mapped to the family)."""
    names = set()
    for name in _METRIC.findall(expr):
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


def record_names(expr: str) -> set[str]:
    """Recording-rule names (level:metric:operation) an expression reads."""
    return set(_RECORD.findall(expr))


def load_groups(path: Path) -> list[dict[str, Any]]:
    """The rule groups of a Prometheus rule file."""
    data = yaml.safe_load(path.read_text())
    groups: list[dict[str, Any]] = data["groups"]
    return groups


def rules(path: Path) -> list[dict[str, Any]]:
    """Every rule of a rule file, in order."""
    return [rule for group in load_groups(path) for rule in group["rules"]]


def write_check_file(path: Path, exprs: list[tuple[str, str]]) -> None:
    """A rule file with one recording rule per expression, for ``promtool check rules``."""
    group = {
        "name": "dashboard-queries",
        "rules": [
            {"record": f"tierroute_check:query_{index}:value", "expr": expr}
            for index, (_, expr) in enumerate(exprs)
        ],
    }
    path.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
