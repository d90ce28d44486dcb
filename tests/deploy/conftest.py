"""Fixtures of the deployment tests: the tools' venv and the chart rendered per environment."""

from __future__ import annotations

import pytest

from tests.deploy.helpers import ENVIRONMENTS, DeployTools, Rendered, render


@pytest.fixture(scope="session")
def tools() -> DeployTools:
    """The .venv-deploy tools (fails with the setup command when missing)."""
    return DeployTools.locate()


@pytest.fixture(scope="session")
def rendered(tools: DeployTools) -> dict[str, Rendered]:
    """The chart rendered with its defaults, values-dev.yaml and values-prod.yaml."""
    return {environment: render(tools, environment, lint=True) for environment in ENVIRONMENTS}
