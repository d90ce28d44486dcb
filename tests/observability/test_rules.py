"""The recording and alert rules: promtool accepts them, unit tests cover every rule."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from .conftest import DOC, PROMTOOL_TESTS_DIR, RULES_DIR
from .promql import metric_names, record_names, rules

RECORDING = RULES_DIR / "recording.yaml"
ALERTS = RULES_DIR / "alerts.yaml"
ALERT_TESTS = PROMTOOL_TESTS_DIR / "alerts_test.yaml"
RECORDING_TESTS = PROMTOOL_TESTS_DIR / "recording_test.yaml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _catalogue() -> set[str]:
    """Metric names documented in the catalogue tables of docs/observability.md."""
    return set(re.findall(r"^\| `([A-Za-z0-9_:]+)`", DOC.read_text(), flags=re.MULTILINE))


def test_promtool_checks_both_rule_files(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RECORDING), str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_recording_rules_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(RECORDING_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests: list[dict[str, Any]] = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules(ALERTS)}
    assert len(alerts) >= 6
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_every_recording_rule_has_a_value_test() -> None:
    tested = set()
    for case in yaml.safe_load(RECORDING_TESTS.read_text())["tests"]:
        for check in case.get("promql_expr_test", []):
            tested |= record_names(check["expr"])
    # Intermediate sums are checked through the ratios and projections built on them.
    building_blocks = {
        "namespace:tierroute_router_cost_usd:rate5m",
        "namespace:tierroute_router_baseline_cost_usd:rate5m",
        "namespace:tierroute_router_cost_usd:rate1h",
        "namespace:tierroute_router_baseline_cost_usd:rate1h",
        "namespace:tierroute_router_requests:rate5m",
        "namespace:tierroute_router_requests:rate30m",
        "namespace:tierroute_router_requests:rate1h",
        "namespace:tierroute_router_error_ratio:rate30m",
        "namespace_tier_reason:tierroute_router_decisions:rate5m",
        "namespace_from_tier_to_tier_cause:tierroute_router_escalations:rate5m",
    }
    records = {rule["record"] for rule in rules(RECORDING)}
    assert building_blocks <= records
    assert records - tested - building_blocks == set()


def test_alerts_read_only_defined_records_and_carry_runbooks() -> None:
    records = {rule["record"] for rule in rules(RECORDING)}
    anchors = {
        "#" + re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", DOC.read_text(), flags=re.MULTILINE)
    }
    for rule in rules(ALERTS):
        assert record_names(rule["expr"]) <= records, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/observability.md#")
        assert runbook.removeprefix("docs/observability.md") in anchors, runbook


def test_rules_read_only_catalogued_metrics() -> None:
    catalogue = _catalogue()
    used: set[str] = set()
    for rule in rules(RECORDING) + rules(ALERTS):
        used |= metric_names(rule["expr"])
    assert used, "no metric found in the rules"
    assert used - catalogue == set(), "metrics used by rules but missing from the catalogue"
    records = {rule["record"] for rule in rules(RECORDING)}
    assert records - catalogue == set(), "recording rules missing from docs/observability.md"
