"""Environment that keeps the caches of every library tierroute runs inside the project.

The Makefile promises that everything stays in the repository; a command run directly
(``.venv/bin/tierroute up``) would otherwise let vLLM write ``~/.cache/vllm`` and onnxruntime
``~/.cache/Microsoft``. The launcher gives these variables to every service it starts, and the
``tierroute`` command sets them for itself and its helpers. Import-light: no gRPC, no vLLM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from tierroute.paths import default_cache_dir


def runtime_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where the libraries the services load keep their caches (vLLM, Hugging Face,
    onnxruntime, matplotlib): the folder holding the repository's ``.cache/tierroute`` (the
    ``.cache`` the Makefile also uses), else a ``runtime`` folder inside the tierroute cache."""
    cache = default_cache_dir(environ)
    return cache.parent if cache.name == "tierroute" else cache / "runtime"


def contained_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables that keep every cache of a child inside the project: the values of
    ``environ`` (the process environment by default) where set, else paths under
    :func:`runtime_cache_root`. Without them vLLM writes ``~/.cache/vllm`` and onnxruntime
    ``~/.cache/Microsoft``."""
    env = os.environ if environ is None else environ
    root = runtime_cache_root(env)
    wanted = {
        # Read by vLLM, Hugging Face, onnxruntime's device id and most other libraries.
        "XDG_CACHE_HOME": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "VLLM_CACHE_ROOT": str(root / "vllm"),
        "VLLM_CONFIG_ROOT": str(root / "config" / "vllm"),
        "HF_HOME": str(root / "huggingface"),
        "MPLCONFIGDIR": str(root / "matplotlib"),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "torchinductor"),
        # vLLM's usage report would write its own file under the config root.
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    return {name: env.get(name) or value for name, value in wanted.items()}


def contain_caches(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :func:`contained_environment` in ``environ`` (the process environment by default),
    keeping values already set; returns what is in force."""
    target = os.environ if environ is None else environ
    values = contained_environment(target)
    target.update(values)
    return values
