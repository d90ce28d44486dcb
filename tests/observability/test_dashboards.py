"""The Grafana dashboards: up to date with their generator, well-formed, every query valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from .conftest import DOC, ROOT, RULES_DIR
from .promql import (
    dashboard_queries,
    metric_names,
    panels,
    record_names,
    rules,
    substitute,
    write_check_file,
)

EXPECTED = {
    "tierroute-cost.json": "tierroute / Cost & savings",
    "tierroute-quality.json": "tierroute / Quality",
    "tierroute-routing.json": "tierroute / Routing",
    "tierroute-tiers.json": "tierroute / Tiers",
}
PANEL_TYPES = {"row", "stat", "timeseries", "heatmap", "piechart", "bargauge", "state-timeline"}
DCGM = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}


def test_generated_json_matches_the_generator() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "observability.generate", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_four_dashboards_are_shipped(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {name: d["title"] for name, d in dashboards.items()} == EXPECTED
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] == Path(name).stem
        assert "tierroute" in dashboard["tags"]


def test_dashboards_round_trip_through_the_schema_model(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    # Decoding into the SDK's Grafana-schema classes and encoding again drops any key the
    # schema does not know: a misspelt option would show up as a difference.
    for name, dashboard in dashboards.items():
        model = dashboard_model.Dashboard.from_json(dashboard)
        again = json.loads(json.dumps(model, cls=JSONEncoder))
        assert again == dashboard, name


def test_panels_fit_the_grid_without_overlapping(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        cells: dict[tuple[int, int], int] = {}
        ids = set()
        for panel in panels(dashboard):
            assert panel["type"] in PANEL_TYPES, (name, panel["type"])
            assert panel["id"] not in ids, (name, panel["id"])
            ids.add(panel["id"])
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, (name, panel)
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, (
                        f"{name}: panels {cells.get((x, y))} and {panel['id']}"
                    )
                    cells[(x, y)] = panel["id"]


def test_every_panel_queries_the_datasource_variable(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, dashboard in dashboards.items():
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "namespace"} <= variables, name
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["title"] and panel["datasource"]["uid"] == "${datasource}", panel
            targets = panel["targets"]
            assert targets, f"{name}: panel {panel['title']!r} has no query"
            assert len({t["refId"] for t in targets}) == len(targets)
            for target in targets:
                assert target["datasource"]["uid"] == "${datasource}"
                for variable in variables - {"datasource"}:
                    if f"${variable}" in target["expr"]:
                        break
                else:
                    # Only the GPU panels read metrics from outside tierroute (DCGM exporter).
                    assert metric_names(target["expr"]) <= DCGM, (name, target["expr"])


def test_every_dashboard_query_passes_promtool(
    dashboards: dict[str, dict[str, Any]], promtool: str, tmp_path: Path
) -> None:
    exprs = [
        (f"{name}: {where}", substitute(expr))
        for name, dashboard in dashboards.items()
        for where, expr in dashboard_queries(dashboard)
    ]
    assert len(exprs) >= 60
    check_file = tmp_path / "dashboard_queries.yaml"
    write_check_file(check_file, exprs)
    result = subprocess.run(
        [promtool, "check", "rules", str(check_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_dashboards_read_only_catalogued_metrics_and_defined_records(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    catalogue = set(DOC.read_text().split("`"))
    records = {rule["record"] for rule in rules(RULES_DIR / "recording.yaml")}
    used_metrics: set[str] = set()
    used_records: set[str] = set()
    for dashboard in dashboards.values():
        for _, expr in dashboard_queries(dashboard):
            used_metrics |= metric_names(expr)
            used_records |= record_names(expr)
    assert used_metrics - catalogue == set()
    assert used_records - records == set()
    assert used_metrics >= DCGM
