"""The cache directory (``$TIERROUTE_CACHE_DIR``) and the prepared models' folder inside it,
shared by the offline tools and the services.

Import-light on purpose (the router's classifier reads it at serving time), and the one place
that looks up the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CACHE_DIR_ENV = "TIERROUTE_CACHE_DIR"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$TIERROUTE_CACHE_DIR``, else ``<repository>/.cache/tierroute`` (or the user cache)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV]).expanduser()
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root / ".cache" / "tierroute"
    # An installed (non-editable) package has no repository around it.
    return Path.home() / ".cache" / "tierroute"


def models_dir(cache_dir: Path) -> Path:
    """Folder holding one sub-folder per prepared model (``<cache>/models``)."""
    return cache_dir / "models"
