"""The real classifier artefacts (MiniLM and static), built once per session (a no-op when
already up to date)."""

from __future__ import annotations

import pytest

from tierroute_tools.classifier_training.artifacts import StaticPaths
from tierroute_tools.classifier_training.pipeline import ArtifactPaths, build
from tierroute_tools.classifier_training.static_build import build_static


@pytest.fixture(scope="session")
def artifact() -> ArtifactPaths:
    """``$TIERROUTE_CACHE_DIR/classifier`` with the default recipe (``make`` builds it first)."""
    paths = ArtifactPaths.default()
    build(paths, log=print)
    return paths


@pytest.fixture(scope="session")
def static_artifact() -> StaticPaths:
    """``$TIERROUTE_CACHE_DIR/classifier/static``, the default encoder (``make prepare``)."""
    paths = ArtifactPaths.default().static
    build_static(paths, log=print)
    return paths
