"""A tiny random-initialised model with the embedded model's architecture and tokenizer, for
training tests: real TRL/PEFT code paths, seconds per step, nothing downloaded."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model(target: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """Write a checkpoint (config, random weights, the embedded tokenizer) to `target`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from looptool.serving.embedded import materialise

    source = materialise(log=lambda *a: None)
    config = AutoConfig.from_pretrained(str(source))
    config.num_hidden_layers = layers
    config.hidden_size = hidden
    config.intermediate_size = hidden * 2
    config.num_attention_heads = 4
    config.num_key_value_heads = 2
    config.head_dim = hidden // 4
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(target))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(target))
    return target
