"""GGUF → Hugging Face folder (safetensors, config, tokenizer with its chat template).

vLLM's CPU build cannot load GGUF files, so each embedded model is dequantized once by
transformers (``gguf_file=``) and saved as a bf16 Hugging Face folder that vLLM loads natively.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from pathlib import Path

from tierroute_tools.modelprep.errors import ModelPrepError

REQUIRED_PACKAGES = ("torch", "transformers", "gguf", "accelerate")
"""Python packages the conversion needs (the ``train`` extra of tierroute)."""


def missing_packages() -> list[str]:
    """The required packages that cannot be imported here."""
    return [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize ``gguf`` into a bf16 Hugging Face folder at ``out_dir``."""
    missing = missing_packages()
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise ModelPrepError(
            f"model preparation needs the Python package(s) {names}: "
            "pip install 'tierroute[train]' (or those packages) and run it again"
        )
    # Everything comes from the local GGUF; a hub lookup would be a bug, so forbid it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelPrepError(f"{gguf.name} carries no chat template; it is not an instruct model")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are already dequantized in memory; the GGUF quantizer marker only stops
    # save_pretrained ("not serializable") and would make loaders expect GGUF tensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    del model
    gc.collect()
