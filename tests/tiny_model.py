"""A tiny random-initialised model with the embedded model's architecture and tokenizer, for
training tests: real TRL/PEFT code paths, seconds per step, nothing downloaded. The thinking
variant swaps in a Qwen3-style chat template of our own (`qwen3_style_template.jinja`): native
tools, `<tool_call>` answers, `<think>` blocks and the `enable_thinking` switch."""

from __future__ import annotations

from pathlib import Path

QWEN3_STYLE_TEMPLATE = Path(__file__).with_name("qwen3_style_template.jinja")


def build_tiny_model(target: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                     chat_template: str | None = None) -> Path:
    """Write a checkpoint (config, random weights, the embedded tokenizer) to `target`;
    `chat_template` replaces the tokenizer's own."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from looptool.embedded import materialise

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
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(target))
    return target


def build_thinking_model(target: Path, **kwargs) -> Path:
    """The tiny checkpoint with the Qwen3-style template: a reasoning policy's prompts on the CPU."""
    return build_tiny_model(target, chat_template=QWEN3_STYLE_TEMPLATE.read_text(), **kwargs)
