"""Shared fixtures of the observability tests: paths, promtool, the dashboards' JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "helm" / "tierroute" / "files" / "rules"
DASHBOARDS_DIR = ROOT / "helm" / "tierroute" / "files" / "dashboards"
PROMTOOL_TESTS_DIR = ROOT / "observability" / "promtool"
DOC = ROOT / "docs" / "observability.md"
MISSING_TOOL = (
    "{tool} not found on PATH: install Debian's prometheus package "
    "(make system-deps, or apt-get install -y --no-install-recommends prometheus)"
)


def require_tool(name: str) -> str:
    """The path of a Prometheus binary; fails (never skips) the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(MISSING_TOOL.format(tool=name), pytrace=False)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool."""
    return require_tool("promtool")


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """Every shipped dashboard, by file name."""
    found = {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }
    assert found, f"no dashboards in {DASHBOARDS_DIR}"
    return found
