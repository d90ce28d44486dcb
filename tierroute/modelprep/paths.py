"""Where prepared models live: ``$TIERROUTE_CACHE_DIR/models/<folder>``.

The cache directory is the one piece of configuration shared by the offline tools and the
services; it is read here, once, so nothing else needs to look at the environment for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CACHE_DIR_ENV = "TIERROUTE_CACHE_DIR"
MARKER_FILE = "tierroute-model.json"
"""Written last into a prepared folder; its presence means the folder is complete."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$TIERROUTE_CACHE_DIR``, else ``<repository>/.cache/tierroute`` (or the user cache)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV]).expanduser()
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / ".cache" / "tierroute"
    # An installed (non-editable) package has no repository around it.
    return Path.home() / ".cache" / "tierroute"


def models_dir(cache_dir: Path) -> Path:
    """Folder holding one sub-folder per prepared model."""
    return cache_dir / "models"


def downloads_dir(cache_dir: Path) -> Path:
    """Folder for downloaded wheels and assembled GGUF files (removable after preparation)."""
    return cache_dir / "downloads"
