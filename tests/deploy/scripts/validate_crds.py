"""Validate custom resources against models generated from their CRDs.

Runs in .venv-deploy: ``python validate_crds.py MANIFESTS.yaml``. Every ServiceMonitor and
PrometheusRule is parsed by cloudcoil's prometheus-operator models, every cert-manager
Certificate by its cert-manager models (types, enums, required fields), and must survive a
round trip unchanged, which rejects unknown fields the way ``kubectl --validate=strict`` does.
Prints one line per object; exits 1 on the first failures.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from cloudcoil.models.prometheus_operator import v1

try:
    from cloudcoil.models.cert_manager import v1 as cert_manager_v1
except ImportError:  # the tools' venv predates the cert-manager models: say how to fix it
    sys.exit("cloudcoil-models-cert-manager missing: rerun tools/setup-deploy-tools.sh")

# (API group prefix, model) per kind.
MODELS: dict[str, tuple[str, Any]] = {
    "ServiceMonitor": ("monitoring.coreos.com/", v1.ServiceMonitor),
    "PrometheusRule": ("monitoring.coreos.com/", v1.PrometheusRule),
    "PodMonitor": ("monitoring.coreos.com/", v1.PodMonitor),
    "Certificate": ("cert-manager.io/", cert_manager_v1.Certificate),
}


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Paths where the round-tripped document differs from the input."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{path}.{key}: unknown field")
            elif key not in expected:
                found.append(f"{path}.{key}: added by the model")
            else:
                found.extend(differences(expected[key], actual[key], f"{path}.{key}"))
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            item
            for index, (left, right) in enumerate(zip(expected, actual, strict=True))
            for item in differences(left, right, f"{path}[{index}]")
        ]
    if expected != actual and str(expected) != str(actual):
        return [f"{path}: {expected!r} became {actual!r}"]
    return []


def main(path: str) -> int:
    """Entry point; returns the exit code."""
    failures = 0
    with open(path, encoding="utf-8") as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc]
    for doc in documents:
        group, model = MODELS.get(doc.get("kind", ""), ("", None))
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if model is None or not str(doc.get("apiVersion", "")).startswith(group):
            print(f"not a known custom resource: {name}")
            failures += 1
            continue
        try:
            parsed = model.model_validate(doc)
        except Exception as error:  # pydantic's ValidationError and friends
            print(f"INVALID {name}: {error}")
            failures += 1
            continue
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        problems = differences(doc, dumped)
        if problems:
            print(f"INVALID {name}: " + "; ".join(problems))
            failures += 1
        else:
            print(f"ok {name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
