"""Loading the policy for training: the base model (full precision, or 4-bit nf4 for QLoRA) with
a LoRA adapter -- a fresh one, or the previous stage's adapter continued.

On a machine without CUDA the weights are float32 on the CPU, and forward and backward passes run
under bfloat16 autocast where the CPU computes bfloat16 natively (`[train] cpu_precision`; no
gradient checkpointing: it only trades compute for memory, and the CPU has memory). With CUDA
the compute dtype is bf16, and gradient checkpointing is on so an 8B policy's activations fit
beside it on one GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looptool.config import TrainConfig


@dataclass(frozen=True)
class Device:
    cuda: bool
    quantized: bool  # the base is loaded in 4 bits (QLoRA)
    cpu_bf16: bool = False  # bfloat16 autocast on the CPU

    @property
    def description(self) -> str:
        where = "CUDA" if self.cuda else "CPU (bf16 autocast)" if self.cpu_bf16 else "CPU"
        return where + (", QLoRA (nf4 base)" if self.quantized else ", LoRA")


def device_for(train: TrainConfig) -> Device:
    import torch

    from looptool.serving.server import cpu_has_fast_bf16

    cuda = torch.cuda.is_available()
    quantized = train.quantization == "nf4" or (train.quantization == "auto" and cuda)
    cpu_bf16 = not cuda and (train.cpu_precision == "bfloat16"
                             or (train.cpu_precision == "auto" and cpu_has_fast_bf16()))
    return Device(cuda, quantized, cpu_bf16)


def lora_config(train: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=train.lora_r, lora_alpha=train.lora_alpha, lora_dropout=train.lora_dropout,
                      target_modules=train.target_modules, task_type="CAUSAL_LM", bias="none")


def load_policy(model_dir: Path, train: TrainConfig, device: Device, *, start_adapter: Path | None = None) -> Any:
    """The base model with a trainable LoRA adapter (continued from `start_adapter` if given)."""
    import torch
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if device.cuda else torch.float32}
    if device.quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if device.cuda else torch.float32,
        )  # fmt: skip
        if device.cuda:  # each training process ([train] processes) on its own GPU
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if device.quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device.cuda)
    if start_adapter is not None:
        return PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    return get_peft_model(model, lora_config(train))


def peak_memory_mb(device: Device) -> float:
    """Peak accelerator memory (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if device.cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
