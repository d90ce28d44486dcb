"""The real classifier artefact, built once per session (a no-op when already up to date)."""

from __future__ import annotations

import pytest

from tierroute_tools.classifier_training.pipeline import ArtifactPaths, build


@pytest.fixture(scope="session")
def artifact() -> ArtifactPaths:
    """``$TIERROUTE_CACHE_DIR/classifier`` with the default recipe (``make`` builds it first)."""
    paths = ArtifactPaths.default()
    build(paths, log=print)
    return paths
