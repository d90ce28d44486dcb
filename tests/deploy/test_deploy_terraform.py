"""The Terraform: formatting (terraform 1.0.3 fmt), structure (python-hcl2), policies (checkov).

Terraform itself cannot init here (no provider downloads), so `validate`/`plan` are out of reach;
what can be checked offline is: the files are canonically formatted, every file parses, the
structure holds (variables and outputs documented, providers pinned, remote state encrypted and
locked, required tags, encryption on every store), and checkov finds nothing it was not told why
to accept. Cross-checks tie the Terraform to the chart: node-group labels and taints against the
values' nodeSelectors and tolerations, GPU capacity against the tiers, the IRSA subject against
the chart's model service account.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import CHART, TERRAFORM, DeployTools, render

REQUIRED_TAGS = {"Project", "Environment", "Owner", "CostCenter", "ManagedBy"}
ROOTS = ("envs/dev", "envs/prod", "bootstrap")
MODULES = ("network", "eks", "model_store", "registry", "platform", "stack")
# What the environment roots hold: only what Terraform requires per root, besides the one call
# of modules/stack.
ROOT_FILES = ("main.tf", "variables.tf", "outputs.tf", "providers.tf", "versions.tf")
# GPUs of the H100 instance types the node groups may use.
GPUS_PER_INSTANCE = {"p5.4xlarge": 1, "p5.48xlarge": 8, "p5e.48xlarge": 8, "p5en.48xlarge": 8}

Parsed = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def hcl(tools: DeployTools) -> Parsed:
    """Every .tf and .tfvars file under terraform/, parsed by python-hcl2."""
    library = tools.venv / "hcl2-lib"
    result = tools.script("hcl_to_json.py", str(TERRAFORM), env={"PYTHONPATH": str(library)})
    assert result.returncode == 0, result.stderr
    parsed: Parsed = json.loads(result.stdout)
    return parsed


def blocks(hcl: Parsed, kind: str, prefix: str = "") -> list[tuple[str, str, dict[str, Any]]]:
    """(file, label, body) of every top-level block of a kind (variable, output, module, ...)."""
    found = []
    for path, content in hcl.items():
        if path.startswith(prefix):
            for block in content.get(kind, []):
                for label, body in block.items():
                    found.append((path, label, body))
    return found


def resources(hcl: Parsed, resource_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(file, name, body) of every resource of a type."""
    found = []
    for path, content in hcl.items():
        for block in content.get("resource", []):
            for name, body in block.get(resource_type, {}).items():
                found.append((path, name, body))
    return found


def tfvars(hcl: Parsed, environment: str) -> dict[str, Any]:
    """An environment's terraform.tfvars, flat: the root's own values and those of `stack`."""
    values = hcl[f"envs/{environment}/terraform.tfvars"]
    return {**{k: v for k, v in values.items() if k != "stack"}, **values["stack"]}


# --- formatting and parsing -------------------------------------------------------------------


def test_terraform_fmt_check(tools: DeployTools, tmp_path: Path) -> None:
    terraform = tools.binary("terraform")
    version = tools.run([terraform, "version"])
    assert "Terraform v1.0" in version.stdout
    result = tools.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)])
    assert result.returncode == 0, f"run terraform fmt -recursive terraform/:\n{result.stdout}"
    # Control: the check does catch a misformatted file.
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy)
    main = copy / "modules" / "network" / "main.tf"
    main.write_text(
        main.read_text().replace(
            "  cidr_block           = var.cidr_block", "cidr_block=var.cidr_block"
        )
    )
    assert tools.run([terraform, "fmt", "-check", "-recursive", str(copy)]).returncode != 0


def test_every_file_parses(hcl: Parsed) -> None:
    on_disk = {
        str(p.relative_to(TERRAFORM))
        for p in [*TERRAFORM.rglob("*.tf"), *TERRAFORM.rglob("*.tfvars")]
    }
    assert set(hcl) == on_disk
    assert len(hcl) >= 35


# --- structure --------------------------------------------------------------------------------


def test_layout_has_the_modules_and_environments() -> None:
    for directory in MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (TERRAFORM / "modules" / directory / name).is_file(), f"{directory}/{name}"
    for root in ROOTS:
        assert (TERRAFORM / root / "versions.tf").is_file()
    for environment in ("dev", "prod"):
        names = {p.name for p in (TERRAFORM / "envs" / environment).iterdir()}
        assert names == {*ROOT_FILES, "terraform.tfvars"}, environment


def test_variables_and_outputs_are_documented(hcl: Parsed) -> None:
    variables = blocks(hcl, "variable")
    outputs = blocks(hcl, "output")
    assert len(variables) > 50 and len(outputs) > 15
    for path, name, body in variables:
        assert len(body.get("description", "")) >= 10, f"{path}: variable {name} undocumented"
        assert "type" in body, f"{path}: variable {name} has no type"
    for path, name, body in outputs:
        assert len(body.get("description", "")) >= 10, f"{path}: output {name} undocumented"


def test_terraform_and_providers_are_pinned(hcl: Parsed) -> None:
    settings = blocks(hcl, "terraform")
    directories = {str(Path(path).parent) for path, _, _ in settings}
    assert directories >= {
        *ROOTS,
        *(f"modules/{m}" for m in ("network", "eks", "platform", "stack")),
    }
    for path, content in hcl.items():
        for block in content.get("terraform", []):
            assert block["required_version"].startswith(">="), path
            for providers in block.get("required_providers", []):
                for name, spec in providers.items():
                    assert spec["source"].startswith("hashicorp/"), f"{path}: {name}"
                    assert spec["version"].startswith("~>"), f"{path}: {name} unpinned"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_remote_state_is_encrypted_and_locked(hcl: Parsed, environment: str) -> None:
    (settings,) = hcl[f"envs/{environment}/versions.tf"]["terraform"]
    (backend,) = settings["backend"]
    s3 = backend["s3"]
    assert s3["encrypt"] is True
    assert s3["use_lockfile"] is True
    assert s3["key"] == f"tierroute/{environment}/terraform.tfstate"


def test_required_tags_on_every_root(hcl: Parsed) -> None:
    for root in ROOTS:
        providers = [b for path, _, b in blocks(hcl, "provider", root) if "default_tags" in b]
        assert providers, f"{root}: no aws provider with default_tags"
        (aws,) = providers
        assert aws["default_tags"][0]["tags"] == "${local.tags}"
        (locals_,) = [
            b
            for path, content in hcl.items()
            if path.startswith(root)
            for b in content.get("locals", [])
            if "tags" in b
        ]
        assert set(locals_["tags"]) >= REQUIRED_TAGS, root
    # Modules take tags and put them on what they create.
    for module in ("network", "eks", "model_store", "registry", "stack"):
        names = [name for _, name, _ in blocks(hcl, "variable", f"modules/{module}/")]
        assert "tags" in names, module
    # The roots hand their tags (the provider's default_tags) to the stack, which passes them on
    # and refuses a set lacking a required tag.
    for path, name, body in blocks(hcl, "module", "envs/"):
        assert body["tags"] == "${local.tags}", f"{path}: module {name}"
    for path, name, body in blocks(hcl, "module", "modules/stack/"):
        if name != "platform":
            assert body["tags"] == "${var.tags}", f"{path}: module {name}"
    (tags,) = [b for _, name, b in blocks(hcl, "variable", "modules/stack/") if name == "tags"]
    (validation,) = tags["validation"]
    assert all(f'"{tag}"' in validation["condition"] for tag in REQUIRED_TAGS)


def test_encryption_is_on_everywhere(hcl: Parsed) -> None:
    (cluster,) = resources(hcl, "aws_eks_cluster")
    (encryption,) = cluster[2]["encryption_config"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"][0]["key_arn"] == "${aws_kms_key.secrets.arn}"
    keys = resources(hcl, "aws_kms_key")
    assert {name for _, name, _ in keys} == {"platform", "secrets", "state"}
    assert all(body["enable_key_rotation"] is True for _, _, body in keys)
    groups = resources(hcl, "aws_cloudwatch_log_group")
    assert len(groups) == 2
    assert all(body["kms_key_id"].startswith("${var.") for _, _, body in groups)
    buckets = resources(hcl, "aws_s3_bucket")
    encrypted = {
        body["bucket"]
        for _, _, body in resources(hcl, "aws_s3_bucket_server_side_encryption_configuration")
    }
    blocked = {body["bucket"] for _, _, body in resources(hcl, "aws_s3_bucket_public_access_block")}
    versioned = {body["bucket"] for _, _, body in resources(hcl, "aws_s3_bucket_versioning")}
    assert len(buckets) == 3
    for _, name, _ in buckets:
        reference = f"${{aws_s3_bucket.{name}.id}}"
        assert reference in encrypted and reference in blocked and reference in versioned, name
    kms_rules = [
        rule["apply_server_side_encryption_by_default"][0]
        for _, name, body in resources(hcl, "aws_s3_bucket_server_side_encryption_configuration")
        if name != "access_logs"
        for rule in body["rule"]
    ]
    assert kms_rules and all(r["sse_algorithm"] == "aws:kms" for r in kms_rules)
    (template,) = resources(hcl, "aws_launch_template")
    (disk,) = template[2]["block_device_mappings"]
    assert disk["ebs"][0]["encrypted"] is True
    assert template[2]["metadata_options"][0]["http_tokens"] == "required"
    (ecr,) = resources(hcl, "aws_ecr_repository")
    assert ecr[2]["encryption_configuration"][0]["encryption_type"] == "KMS"
    assert ecr[2]["image_tag_mutability"] == "IMMUTABLE"


def test_cluster_has_irsa_and_network_policy_enforcement(hcl: Parsed) -> None:
    assert len(resources(hcl, "aws_iam_openid_connect_provider")) == 1
    addons = {body["addon_name"]: body for _, _, body in resources(hcl, "aws_eks_addon")}
    assert set(addons) == {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver"}
    assert "enableNetworkPolicy" in addons["vpc-cni"]["configuration_values"]
    (cluster,) = resources(hcl, "aws_eks_cluster")
    assert set(cluster[2]["enabled_cluster_log_types"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    assert cluster[2]["vpc_config"][0]["endpoint_private_access"] is True


def test_environments_share_the_stack(hcl: Parsed) -> None:
    dev, prod = TERRAFORM / "envs" / "dev", TERRAFORM / "envs" / "prod"
    assert sorted(p.name for p in dev.iterdir()) == sorted(p.name for p in prod.iterdir())
    for name in ROOT_FILES:
        if name != "versions.tf":
            assert (dev / name).read_text() == (prod / name).read_text(), name
    # versions.tf differs in the state key only.
    dev_versions = (dev / "versions.tf").read_text()
    assert (
        dev_versions.replace("tierroute/dev/", "tierroute/prod/")
        == (prod / "versions.tf").read_text()
    )
    # Each root calls modules/stack once, and the stack composes the six modules.
    for environment in ("dev", "prod"):
        modules = blocks(hcl, "module", f"envs/{environment}/")
        assert [(name, body["source"]) for _, name, body in modules] == [
            ("stack", "../../modules/stack")
        ]
    composed = {name: body["source"] for _, name, body in blocks(hcl, "module", "modules/stack/")}
    assert composed == {
        m: f"../{m}"
        for m in ("network", "eks", "model_store", "registry", "state_store", "platform")
    }
    assert [p for p, _, _ in resources(hcl, "aws_kms_key") if "envs/" in p] == []
    # The root passes every input of the stack; the stack's part of terraform.tfvars is passed
    # attribute by attribute, so the tfvars of both environments set exactly those attributes.
    (call,) = [body for _, _, body in blocks(hcl, "module", "envs/dev/")]
    inputs = {name for _, name, _ in blocks(hcl, "variable", "modules/stack/")}
    assert set(call) - {"source"} == inputs
    from_stack = {k for k, v in call.items() if str(v).startswith("${var.stack.")}
    assert len(from_stack) == len(inputs) - 3  # all but environment, region and tags
    assert all(call[k] == f"${{var.stack.{k}}}" for k in from_stack)
    for environment in ("dev", "prod"):
        assert set(hcl[f"envs/{environment}/terraform.tfvars"]["stack"]) == from_stack, environment
    # ...and differ in size.
    dev_vars, prod_vars = tfvars(hcl, "dev"), tfvars(hcl, "prod")
    assert len(prod_vars["availability_zones"]) > len(dev_vars["availability_zones"])
    assert dev_vars["single_nat_gateway"] is True and prod_vars["single_nat_gateway"] is False


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_gpu_groups_are_h100_and_tainted(hcl: Parsed, environment: str) -> None:
    groups = tfvars(hcl, environment)["node_groups"]
    cpu = [g for g in groups.values() if not g["gpu"]]
    gpu = [g for g in groups.values() if g["gpu"]]
    assert len(cpu) == 1 and len(gpu) >= 1
    assert cpu[0]["taints"] == []
    for group in gpu:
        assert set(group["instance_types"]) <= set(GPUS_PER_INSTANCE), group["instance_types"]
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in group[
            "taints"
        ]
    for group in groups.values():
        assert "tierroute/pool" in group["labels"]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_chart_values_fit_the_node_groups(hcl: Parsed, environment: str) -> None:
    values = yaml.safe_load((CHART / f"values-{environment}.yaml").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["modelDefaults"]
    groups = {
        g["labels"]["tierroute/pool"]: g for g in tfvars(hcl, environment)["node_groups"].values()
    }
    assert groups[values["router"]["nodeSelector"]["tierroute/pool"]]["gpu"] is False
    needed: dict[str, int] = {}
    for tier in values["tiers"]:
        merged = {**defaults, **values.get("modelDefaults", {}), **tier}
        pool = merged["nodeSelector"]["tierroute/pool"]
        group = groups[pool]
        assert group["gpu"] is True, f"tier {tier['name']} selects a CPU group"
        gpus = merged.get("gpus") or merged["tensorParallelSize"]
        per_node = min(GPUS_PER_INSTANCE[t] for t in group["instance_types"])
        assert gpus <= per_node, f"tier {tier['name']} needs {gpus} GPUs on one node"
        needed[pool] = needed.get(pool, 0) + gpus * merged["replicas"]
    for pool, gpus in needed.items():
        per_node = min(GPUS_PER_INSTANCE[t] for t in groups[pool]["instance_types"])
        # The initial size runs every replica; the maximum leaves room for a rollout.
        assert groups[pool]["desired_size"] * per_node >= gpus, pool
        assert groups[pool]["max_size"] * per_node >= gpus, pool


def test_model_reader_role_trusts_the_charts_service_account(
    hcl: Parsed, tools: DeployTools
) -> None:
    rendered = render(tools, "prod", release="tierroute")
    accounts = [
        a
        for a in rendered.of_kind("ServiceAccount")
        if a["metadata"]["labels"]["app.kubernetes.io/component"] == "model"
    ]
    (account,) = accounts
    subject = f"{account['metadata']['namespace']}/{account['metadata']['name']}"
    (store,) = [
        b for _, name, b in blocks(hcl, "module", "modules/stack/") if name == "model_store"
    ]
    assert store["service_account"] == subject
    (platform_namespace,) = [
        b["default"]
        for _, name, b in blocks(hcl, "variable", "modules/platform/")
        if name == "tierroute_namespace"
    ]
    assert platform_namespace == account["metadata"]["namespace"]


# --- policies ---------------------------------------------------------------------------------


def test_checkov_terraform_passes_with_justified_skips(tools: DeployTools) -> None:
    args = [tools.binary("checkov"), "--framework", "terraform", "-d", str(TERRAFORM)]
    args += ["--skip-download", "-o", "json"]
    result = tools.run(args)
    report = json.loads(result.stdout)
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 250
    # Every skip is an inline `checkov:skip=ID:reason` next to the resource, with a reason.
    skipped = report["results"]["skipped_checks"]
    assert skipped
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
