"""Process environment the vLLM CPU build reads, derived from settings.

vLLM reads these variables in the engine processes it spawns, so they must be in this
process's environment before the engine is created (and, to be safe, before vLLM is imported).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from model_svc.config import EngineSettings


def engine_environment(settings: EngineSettings) -> dict[str, str]:
    """The variables to set: thread binding, KV cache size, and no model-hub access."""
    return {
        "VLLM_CPU_OMP_THREADS_BIND": settings.cpu_threads_bind,
        "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib),
        # Models are local folders; a hub lookup at run time would be a bug.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def apply_engine_environment(
    settings: EngineSettings, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Write :func:`engine_environment` into ``environ`` (the process environment by default)."""
    values = engine_environment(settings)
    target = os.environ if environ is None else environ
    target.update(values)
    return values
