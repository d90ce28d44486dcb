"""Where prepared models live: ``$TIERROUTE_CACHE_DIR/models/<folder>``.

The cache directory itself comes from :mod:`tierroute.paths`.
"""

from __future__ import annotations

from pathlib import Path

from tierroute.paths import CACHE_DIR_ENV, default_cache_dir, models_dir

__all__ = ["CACHE_DIR_ENV", "MARKER_FILE", "default_cache_dir", "downloads_dir", "models_dir"]

MARKER_FILE = "tierroute-model.json"
"""Written last into a prepared folder; its presence means the folder is complete."""


def downloads_dir(cache_dir: Path) -> Path:
    """Folder for downloaded wheels and assembled GGUF files (removable after preparation)."""
    return cache_dir / "downloads"
