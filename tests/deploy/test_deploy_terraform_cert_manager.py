"""cert-manager and the CA ClusterIssuer in modules/platform: structure, order, the issuer chart.

Terraform cannot plan here (no providers), so what is checked offline: the cert-manager release
comes from its official repository at a pinned version with its CRDs, in its own `restricted`
namespace, hardened; the releases follow the order cert-manager -> issuer chart -> tierroute;
the switches and the issuer's name exist from the roots down to the platform module; the local
issuer chart lints, renders a self-signed -> CA chain that cert-manager's models accept; and the
values Terraform hands the tierroute chart make its Certificates name that issuer. Formatting
and checkov cover these files too (test_deploy_terraform.py runs both over all of terraform/).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import CHART, TERRAFORM, DeployTools, render, write_objects
from tests.deploy.test_deploy_terraform import Parsed, blocks, resources

PLATFORM = "modules/platform/"
ISSUER_CHART = TERRAFORM / "modules" / "platform" / "charts" / "ca-issuer"
ISSUER_CHART_REF = "${path.module}/charts/ca-issuer"
# Values of the platform's inputs used to evaluate its tierroute values (any will do).
PLATFORM_INPUTS = {
    "image_registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "image_tag": "0.1.0",
    "model_store_uri": "s3://tierroute-test-models",
    "model_reader_role_arn": "arn:aws:iam::123456789012:role/tierroute-test-model-reader",
    "ca_issuer_name": "platform-ca",
}
# Validates cert-manager objects with the models generated from its CRDs, by round trip (an
# unknown field is dropped by the model, so it shows up as a difference).
VALIDATE = """
import sys, yaml
from cloudcoil.models.cert_manager import v1
for doc in yaml.safe_load_all(open(sys.argv[1])):
    model = getattr(v1, doc["kind"])
    dumped = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    print(("ok " if dumped == doc else "INVALID ") + doc["kind"] + "/" + doc["metadata"]["name"])
"""


@pytest.fixture(scope="module")
def hcl(tools: DeployTools) -> Parsed:
    """Every .tf and .tfvars file under terraform/, parsed by python-hcl2."""
    library = tools.venv / "hcl2-lib"
    result = tools.script("hcl_to_json.py", str(TERRAFORM), env={"PYTHONPATH": str(library)})
    assert result.returncode == 0, result.stderr
    parsed: Parsed = json.loads(result.stdout)
    return parsed


def releases(hcl: Parsed) -> dict[str, dict[str, Any]]:
    """The platform's helm_release bodies by name."""
    return {
        name: body
        for path, name, body in resources(hcl, "helm_release")
        if path.startswith(PLATFORM)
    }


def variables(hcl: Parsed, module: str) -> dict[str, dict[str, Any]]:
    """A module's variable blocks by name."""
    return {name: body for _, name, body in blocks(hcl, "variable", f"modules/{module}/")}


def platform_locals(hcl: Parsed) -> dict[str, Any]:
    """Every local value of modules/platform."""
    found: dict[str, Any] = {}
    for path, content in hcl.items():
        if path.startswith(PLATFORM):
            for block in content.get("locals", []):
                found.update(block)
    return found


def evaluate(value: Any, inputs: dict[str, Any], local_values: dict[str, Any]) -> Any:
    """A value whose leaves may be ``${var.x}`` or ``${local.y}``, with those substituted."""
    if isinstance(value, dict):
        return {k: evaluate(v, inputs, local_values) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, inputs, local_values) for v in value]
    if isinstance(value, str) and (match := re.fullmatch(r"\$\{(var|local)\.(\w+)\}", value)):
        kind, name = match.groups()
        if kind == "var":
            return inputs[name]
        return evaluate(local_values[name], inputs, local_values)
    assert not (isinstance(value, str) and "${" in value), f"cannot evaluate {value}"
    return value


def depends_on(body: dict[str, Any]) -> set[str]:
    """helm_release names a release lists in depends_on."""
    return {
        ref.removeprefix("${helm_release.").removesuffix("}")
        for ref in body.get("depends_on", [])
        if ref.startswith("${helm_release.")
    }


def before(graph: dict[str, set[str]], name: str) -> set[str]:
    """Every release ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph[current])
    return seen


# --- the cert-manager release -----------------------------------------------------------------


def test_cert_manager_comes_pinned_from_its_official_repository(
    hcl: Parsed, tools: DeployTools
) -> None:
    release = releases(hcl)["cert_manager"]
    inputs = variables(hcl, "platform")
    assert release["chart"] == "cert-manager"
    assert release["repository"] == '${var.chart_repositories["cert_manager"]}'
    assert inputs["chart_repositories"]["default"]["cert_manager"] == "https://charts.jetstack.io"
    assert release["version"] == "${var.cert_manager_version}"
    version = inputs["cert_manager_version"]["default"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", version), f"{version} is not an exact version"
    # The chart's Certificates are validated against models of this minor's CRDs.
    models = tools.run(
        [
            tools.binary("python"),
            "-c",
            "import importlib.metadata as m; print(m.version('cloudcoil-models-cert-manager'))",
        ]
    )
    assert models.returncode == 0, models.stderr
    assert version.lstrip("v").split(".")[:2] == models.stdout.strip().split(".")[:2]


def test_cert_manager_installs_its_crds_in_a_restricted_namespace(hcl: Parsed) -> None:
    release = releases(hcl)["cert_manager"]
    assert release["count"] == "${var.cert_manager_install ? 1 : 0}"
    assert release["namespace"] == (
        "${kubernetes_namespace_v1.this[var.cert_manager_namespace].metadata[0].name}"
    )
    (namespaces,) = [b for _, n, b in resources(hcl, "kubernetes_namespace_v1") if n == "this"]
    assert (
        'var.cert_manager_install ? {(var.cert_manager_namespace) = "restricted"} : {}'
        in namespaces["for_each"]
    )
    assert release["values"] == ["${yamlencode(local.cert_manager_values)}"]
    values = evaluate(
        platform_locals(hcl)["cert_manager_values"],
        {"cert_manager_namespace": "cert-manager"},
        platform_locals(hcl),
    )
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["global"]["leaderElection"]["namespace"] == "cert-manager"
    assert values["prometheus"]["servicemonitor"]["enabled"] is True
    # Every component meets Pod Security `restricted`, which its namespace enforces.
    for component in (values, values["webhook"], values["cainjector"], values["startupapicheck"]):
        pod, container = component["securityContext"], component["containerSecurityContext"]
        assert pod == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        assert container["allowPrivilegeEscalation"] is False
        assert container["readOnlyRootFilesystem"] is True
        assert container["capabilities"] == {"drop": ["ALL"]}
    for component in (values, values["webhook"]):
        assert component["replicaCount"] >= 2
        assert component["podDisruptionBudget"]["enabled"] is True
    assert values["startupapicheck"]["enabled"] is True


# --- order ------------------------------------------------------------------------------------


def test_releases_install_in_order(hcl: Parsed) -> None:
    found = releases(hcl)
    graph = {name: depends_on(body) & set(found) for name, body in found.items()}
    assert set(found) == {
        "kube_prometheus_stack",
        "gpu_operator",
        "cert_manager",
        "ca_issuer",
        "tierroute",
    }
    # cert-manager's ServiceMonitor needs the Prometheus Operator CRDs; the issuer chart needs
    # cert-manager's CRDs and webhook; the tierroute Certificates need the issuer.
    assert "kube_prometheus_stack" in before(graph, "cert_manager")
    assert "cert_manager" in before(graph, "ca_issuer")
    assert {"cert_manager", "ca_issuer", "kube_prometheus_stack"} <= graph["tierroute"]
    for name in found:
        assert name not in before(graph, name), f"{name} depends on itself"
    assert "tierroute" not in before(graph, "ca_issuer") | before(graph, "cert_manager")


def test_issuer_chart_is_local_and_switchable(hcl: Parsed) -> None:
    release = releases(hcl)["ca_issuer"]
    assert release["count"] == "${var.ca_issuer_create ? 1 : 0}"
    assert release["chart"] == ISSUER_CHART_REF
    assert (ISSUER_CHART / "Chart.yaml").is_file()
    # A ClusterIssuer reads its CA Secret from cert-manager's namespace.
    assert release["namespace"] == "${var.cert_manager_namespace}"
    assert release["values"] == ["${yamlencode({issuerName = var.ca_issuer_name})}"]


# --- variables from the roots down ------------------------------------------------------------


def test_switches_and_issuer_name_reach_the_platform(hcl: Parsed) -> None:
    platform = variables(hcl, "platform")
    for name, kind, default in (
        ("cert_manager_install", "bool", True),
        ("ca_issuer_create", "bool", True),
        ("ca_issuer_name", "string", "tierroute-ca"),
        ("cert_manager_namespace", "string", "cert-manager"),
    ):
        assert platform[name]["type"] == kind, name
        assert platform[name]["default"] == default, name
    (validation,) = platform["ca_issuer_name"]["validation"]
    assert "regex" in validation["condition"]
    stack = variables(hcl, "stack")["cert_manager"]
    assert "optional(bool, true)" in stack["type"]
    assert 'optional(string, "tierroute-ca")' in stack["type"]
    (call,) = [b for _, n, b in blocks(hcl, "module", "modules/stack/") if n == "platform"]
    assert call["cert_manager_install"] == "${var.cert_manager.install}"
    assert call["ca_issuer_create"] == "${var.cert_manager.create_issuer}"
    assert call["ca_issuer_name"] == "${var.cert_manager.issuer_name}"
    prod_issuer = yaml.safe_load((CHART / "values-prod.yaml").read_text())["security"]["tls"][
        "issuerRef"
    ]
    for environment in ("dev", "prod"):
        (root,) = [b for _, _, b in blocks(hcl, "module", f"envs/{environment}/")]
        assert root["cert_manager"] == "${var.stack.cert_manager}"
        settings = hcl[f"envs/{environment}/terraform.tfvars"]["stack"]["cert_manager"]
        assert settings == {"install": True, "create_issuer": True, "issuer_name": "tierroute-ca"}
        # The issuer Terraform creates is the one values-prod.yaml names.
        assert settings["issuer_name"] == prod_issuer["name"]
    assert prod_issuer["kind"] == "ClusterIssuer"


# --- the issuer chart -------------------------------------------------------------------------


def render_issuer(tools: DeployTools, overrides: dict[str, Any]) -> dict[str, Any]:
    """The issuer chart linted and rendered as Terraform installs it."""
    args = [str(ISSUER_CHART), "--set-json", json.dumps(overrides)]
    args += ["--release", "tierroute-ca-issuer", "--namespace", "cert-manager"]
    result = tools.script("render_chart.py", *args)
    assert result.returncode == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_issuer_chart_renders_a_ca_chain(tools: DeployTools, tmp_path: Path) -> None:
    payload = render_issuer(tools, {"issuerName": "platform-ca"})
    assert payload["lint"]["errors"] == []
    assert [m for m in payload["lint"]["messages"] if m["severity"] >= 2] == []
    objects = [
        doc for text in payload["manifests"].values() for doc in yaml.safe_load_all(text) if doc
    ]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert set(by_name) == {
        ("ClusterIssuer", "platform-ca-selfsigned"),
        ("Certificate", "platform-ca"),
        ("ClusterIssuer", "platform-ca"),
    }
    assert by_name["ClusterIssuer", "platform-ca-selfsigned"]["spec"] == {"selfSigned": {}}
    ca = by_name["Certificate", "platform-ca"]
    assert ca["metadata"]["namespace"] == "cert-manager"
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {
        "name": "platform-ca-selfsigned",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert "cert sign" in ca["spec"]["usages"]
    # Renewal keeps the key, so certificates signed before it still verify.
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    issuer = by_name["ClusterIssuer", "platform-ca"]
    assert issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}

    result = tools.run(
        [tools.binary("python"), "-c", VALIDATE, str(write_objects(objects, tmp_path / "ca.yaml"))]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == 3, result.stdout
    # Control: the validation catches a misspelt field.
    issuer["spec"] = {"ca": {"secret": "platform-ca"}}
    result = tools.run(
        [tools.binary("python"), "-c", VALIDATE, str(write_objects([issuer], tmp_path / "b.yaml"))]
    )
    assert "ok " not in result.stdout


def test_issuer_chart_refuses_a_bad_name(tools: DeployTools) -> None:
    for name in ("Tierroute_CA", "x" * 51, ""):
        args = [str(ISSUER_CHART), "--no-lint", "--set-json", json.dumps({"issuerName": name})]
        result = tools.script("render_chart.py", *args)
        assert result.returncode == 2, name
        assert "issuerName" in result.stderr, result.stderr


# --- what the tierroute release gets ----------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_tierroute_certificates_name_the_terraform_issuer(
    hcl: Parsed, tools: DeployTools, environment: str
) -> None:
    release = releases(hcl)["tierroute"]
    assert "${yamlencode(local.tierroute_values)}" in release["values"]
    local_values = platform_locals(hcl)
    values = evaluate(local_values["tierroute_values"], PLATFORM_INPUTS, local_values)
    assert values["security"]["tls"]["issuerRef"] == {
        "name": "platform-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    # The environment's values file first, Terraform's values on top, as the release does.
    rendered = render(tools, environment, overrides=values, release="tierroute")
    certificates = rendered.of_kind("Certificate")
    if environment == "dev":
        assert certificates == []  # dev runs without TLS: the issuer name alone changes nothing
    else:
        assert len(certificates) >= 3  # the router and each tier
        for certificate in certificates:
            assert certificate["spec"]["issuerRef"] == values["security"]["tls"]["issuerRef"]
