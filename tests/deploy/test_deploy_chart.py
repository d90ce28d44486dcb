"""The Helm chart rendered offline for the default, dev and prod values: lint and validation.

Render: helm-python-sdk (Helm v4's Go library; strict lint, values.schema.json enforced).
Validate: kubernetes-validate --strict against the Kubernetes versions in KUBERNETES_VERSIONS
(core objects) and the CRD models (ServiceMonitor, PrometheusRule, cert-manager Certificate).
Policy: checkov --framework kubernetes on the rendered objects. The fields the platform depends
on are checked in test_deploy_chart_fields.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    CHECKOV_SKIPS,
    ENVIRONMENTS,
    KUBERNETES_VERSIONS,
    RELEASE,
    DeployTools,
    Rendered,
    core_objects,
    crd_objects,
    render_error,
    write_objects,
)

# --- lint, schemas, policies -------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_strict_lint_has_no_warnings(rendered: dict[str, Rendered], environment: str) -> None:
    lint = rendered[environment].lint
    assert lint["errors"] == []
    assert [m for m in lint["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_objects_validate_strictly(
    tools: DeployTools, rendered: dict[str, Rendered], tmp_path: Path, kubernetes_version: str
) -> None:
    files = [
        str(write_objects(core_objects(rendered[env]), tmp_path / f"{env}.yaml"))
        for env in ENVIRONMENTS
    ]
    binary = tools.binary("kubernetes-validate")
    result = tools.run([binary, "-k", kubernetes_version, "--strict", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    short_version = kubernetes_version.rsplit(".", 1)[0]
    validated = result.stdout.count(f" against version {short_version}\n")
    assert result.stdout.count(" passed for resource ") == validated
    assert validated == sum(len(core_objects(rendered[env])) for env in ENVIRONMENTS)


def test_strict_validation_rejects_an_unknown_field(
    tools: DeployTools, rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    # The control for the test above: the validator really is strict.
    deployment = json.loads(json.dumps(rendered["prod"].one("Deployment", "tr-tierroute-large")))
    deployment["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 4
    path = write_objects([deployment], tmp_path / "bad.yaml")
    binary = tools.binary("kubernetes-validate")
    result = tools.run([binary, "-k", KUBERNETES_VERSIONS[0], "--strict", str(path)])
    assert result.returncode != 0
    assert "gpuCount" in result.stdout + result.stderr


def test_custom_resources_match_their_crds(
    tools: DeployTools, rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    objects = [o for env in ENVIRONMENTS for o in crd_objects(rendered[env])]
    # Certificates: prod's cert-manager TLS (test_deploy_chart_security.py checks more).
    assert {o["kind"] for o in objects} == {"ServiceMonitor", "PrometheusRule", "Certificate"}
    result = tools.script("validate_crds.py", str(write_objects(objects, tmp_path / "crds.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(objects)

    bad = json.loads(json.dumps(rendered["prod"].one("ServiceMonitor", "tr-tierroute-model")))
    bad["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    certificate = json.loads(json.dumps(rendered["prod"].of_kind("Certificate")[0]))
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    path = write_objects([bad, certificate], tmp_path / "bad.yaml")
    result = tools.script("validate_crds.py", str(path))
    assert result.returncode == 1
    assert "scrapeEvery: unknown field" in result.stdout
    assert ".spec.dnsName: unknown field" in result.stdout


@pytest.fixture(scope="module")
def checkov_report(
    tools: DeployTools, rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One checkov run over the three renders (one process: checkov takes seconds to start)."""
    directory = tmp_path_factory.mktemp("checkov")
    for environment in ENVIRONMENTS:
        write_objects(rendered[environment].objects, directory / f"{environment}.yaml")
    args = [tools.binary("checkov"), "--framework", "kubernetes", "-d", str(directory)]
    args += ["--skip-download", "--skip-check", ",".join(sorted(CHECKOV_SKIPS)), "-o", "json"]
    result = tools.run(args)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_checkov_passes_with_justified_skips(
    checkov_report: dict[str, Any], environment: str
) -> None:
    def of_file(kind: str) -> list[dict[str, Any]]:
        checks: list[dict[str, Any]] = checkov_report["results"][kind]
        return [c for c in checks if c["file_path"].endswith(f"/{environment}.yaml")]

    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in of_file("failed_checks")
    ]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert len(of_file("passed_checks")) > 300
    # Resource-level skips only where a template states why (the helm test pod's probes).
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in of_file("skipped_checks")}
    assert skipped == {
        ("CKV_K8S_8", f"{RELEASE}-tierroute-router-test-health"),
        ("CKV_K8S_9", f"{RELEASE}-tierroute-router-test-health"),
    }


TIER = {"model": "m", "prices": {"inputUsdPerMtok": 1, "outputUsdPerMtok": 1}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"router": {"replica": 3}}, "additional properties 'replica' not allowed"),
        ({"tiers": [{"name": "only", **TIER}]}, "minItems"),
        ({"tiers": [{"name": "Small_1", **TIER}, {"name": "b", **TIER}]}, "/tiers/0/name"),
        (
            {
                "tiers": [
                    {"name": "a", **TIER, "tensorParallelSize": 4, "gpus": 2},
                    {"name": "b", **TIER},
                ]
            },
            "gpus (2) below tensorParallelSize (4)",
        ),
        ({"tiers": [{"name": "a", **TIER}, {"name": "a", **TIER}]}, "duplicate tier name"),
        (
            {
                "tiers": [
                    {"name": "big", **TIER},
                    {
                        "name": "cheap",
                        "model": "m",
                        "prices": {"inputUsdPerMtok": 0, "outputUsdPerMtok": 1},
                    },
                ]
            },
            "cheapest first",
        ),
        ({"modelStore": {"source": "ftp"}}, "/modelStore/source"),
    ],
)
def test_invalid_values_are_refused(
    tools: DeployTools, overrides: dict[str, Any], message: str
) -> None:
    assert message in render_error(tools, overrides)
