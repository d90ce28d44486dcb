"""The GitHub workflows: actionlint clean (shellcheck on every run: script) and doing their job.

ci.yml must run `make test` (the same as .ci/run) and the area checks in parallel; release.yml
must, on a version tag, build and push both images from docker/ and package the chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import ROOT, DeployTools

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    """A workflow as data (YAML's `on` key parses as True)."""
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    raw["on"] = raw.pop(True)
    workflow: dict[str, Any] = raw
    return workflow


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's steps."""
    found: list[dict[str, Any]] = job["steps"]
    return found


def run_text(job: dict[str, Any]) -> str:
    """Every `run:` script of a job, joined."""
    return "\n".join(step.get("run", "") for step in steps(job))


def test_actionlint_clean(tools: DeployTools, tmp_path: Path) -> None:
    actionlint = tools.binary("actionlint")
    tools.binary("shellcheck")  # actionlint finds it on PATH and checks every run: script
    files = [str(WORKFLOWS / "ci.yml"), str(WORKFLOWS / "release.yml")]
    result = tools.run([actionlint, "-verbose", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Rule "shellcheck" was disabled' not in result.stderr
    # Control: an unquoted variable in a script is reported through shellcheck.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: rm $DIR/x\n"
    )
    flagged = tools.run([actionlint, str(bad)])
    assert flagged.returncode == 1 and "SC2086" in flagged.stdout


def test_ci_runs_make_test_and_the_area_checks() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["permissions"] == {"contents": "read"}
    jobs = ci["jobs"]
    assert "bash .ci/run" in run_text(jobs["test"])
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
    assert "tools/setup-deploy-tools.sh" in run_text(jobs["deploy"])
    assert "pytest tests/deploy" in run_text(jobs["deploy"])
    buf = run_text(jobs["buf"])
    assert "buf lint" in buf and "buf format" in buf and "buf breaking" in buf
    assert "mypy" in run_text(jobs["lint"]) and "ruff check" in run_text(jobs["lint"])
    for job in jobs.values():
        assert job["timeout-minutes"] <= 90


def test_ci_gives_root_where_the_tests_need_it_and_checks_the_ordinary_user() -> None:
    # The hosted runner is not root: `make test` (system package, sandbox minimum) goes through
    # sudo, and one job runs the sandbox tests without it, where they assert the refusal.
    jobs = load("ci.yml")["jobs"]
    test = run_text(jobs["test"])
    assert "sudo env" in test and test.index("sudo") < test.index("bash .ci/run")
    unprivileged = run_text(jobs["sandbox-unprivileged"])
    assert "sudo" not in unprivileged and "test_sandbox_minimum.py" in unprivileged
    makefile = (ROOT / "Makefile").read_text()
    system_deps = makefile.partition("\nsystem-deps:")[2].partition("\n\n")[0]
    assert 'sudo="sudo"' in system_deps and "installing the Debian system package" in system_deps


def test_release_builds_both_images_and_packages_the_chart() -> None:
    release = load("release.yml")
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]
    images = jobs["images"]
    assert images["strategy"]["matrix"]["image"] == ["router", "model"]
    assert images["permissions"]["packages"] == "write"
    (build,) = [
        s for s in steps(images) if s.get("uses", "").startswith("docker/build-push-action")
    ]
    assert build["with"]["file"] == "docker/${{ matrix.image }}.Dockerfile"
    assert build["with"]["push"] is True
    for image in ("router", "model"):
        assert (ROOT / "docker" / f"{image}.Dockerfile").is_file()
    # The router image gets the classifier the classifier job built.
    assert images["needs"] == "classifier"
    assert "tierroute classifier build" in run_text(jobs["classifier"])
    chart = run_text(jobs["chart"])
    assert "helm package helm/tierroute" in chart and "helm push" in chart


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_actions_are_pinned_to_a_major_version(name: str) -> None:
    for job in load(name)["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                _action, _, version = step["uses"].partition("@")
                assert version.startswith("v") and version[1:].split(".")[0].isdigit(), step["uses"]


def test_release_stages_the_files_the_router_loads() -> None:
    # The classifier job copies exactly the artefact files router_svc reads, and the chart
    # points the router at them inside the image.
    from tierroute.classifier_artifact import (
        CARD_FILE,
        MODEL_FILE,
        STATIC_SUBDIR,
        STATIC_TABLE_FILE,
        TOKENIZER_FILE,
    )

    staged = run_text(load("release.yml")["jobs"]["classifier"])
    for name in (MODEL_FILE, TOKENIZER_FILE, CARD_FILE):
        assert f".cache/release-classifier/{name}" in staged, name
    # The static encoder (the router's default) is staged beside MiniLM, and the chart points
    # the router at it.
    assert "--encoder all" in staged
    for name in (STATIC_TABLE_FILE, TOKENIZER_FILE, CARD_FILE):
        assert f".cache/release-classifier/{STATIC_SUBDIR}/{name}" in staged, name
    values = yaml.safe_load((ROOT / "helm" / "tierroute" / "values.yaml").read_text())
    classifier = values["router"]["config"]["classifier"]
    assert classifier["static_dir"] == f"/opt/tierroute/classifier/{STATIC_SUBDIR}"
    assert Path(classifier["model_path"]).name == MODEL_FILE
    assert Path(classifier["tokenizer_path"]).name == TOKENIZER_FILE
