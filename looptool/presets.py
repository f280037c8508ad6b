"""Sizes for the machine a workspace runs on: `looptool init --preset cpu | gpu-24gb`.

The defaults of `looptool.toml` are sized for a GPU and a model that can already call tools (groups
of 8, 64 warm-start steps, ...); on 2 CPU cores one GRPO step of those sizes takes minutes. A
preset is a set of values over the defaults, each with the reason it has that value:

* `cpu` -- the embedded 135M model on a few CPU cores: every size as small as still shows each
  stage working. It is exactly what `looptool demo` writes into its workspace (demo.py reads it
  from here).
* `gpu-24gb` -- one 24 GB GPU training an ~8B policy (e.g. Qwen3-8B) with QLoRA: the memory-bound
  sizes chosen so that the 4-bit base, the rollouts' KV cache and the loss pass fit together. The
  policy's model is not part of it: point `[policy] model` at the checkpoint directory.

The values and their reasons are also rendered into docs/CONFIG.md (`config_doc.config_reference`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from looptool.config import ConfigError, WorkspaceConfig


@dataclass(frozen=True)
class Setting:
    value: Any
    why: str


# Section -> field -> Setting, over the defaults. On 2 CPU cores a GRPO step of one prompt takes about
# 40 s and the policy reads about 200 prompt tokens/s (docs/BENCHMARKS.md).
CPU: dict[str, dict[str, Setting]] = {
    "seed": {
        "heldout_fraction": Setting(0.25, "a small held-out set: each round and arm evaluates it"),
    },
    "eval": {
        "max_tokens": Setting(96, "a call of the curated tools fits; rambling answers stop early"),
    },
    "train": {
        "sft_max_steps": Setting(10, "the warm start: 10 x 4 sequences, enough for GRPO groups whose rewards "
                                     "differ"),
        "sft_batch_size": Setting(4, "with 10 steps, 40 sequences: about 2.5 minutes on 2 cores"),
        "sft_data": Setting("seed", "the whole seed pool: 40 different samples, not round 1's 10 four times "
                                    "over"),
        "sft_learning_rate": Setting(1e-3, "at the default 2e-4, 10 steps left every GRPO group all wrong (no "
                                           "signal)"),
        "num_generations": Setting(4, "GRPO groups of 4, one prompt a step: about 40 s a step"),
        "prompts_per_step": Setting(1, "one group a step: each step costs one prompt's rollouts"),
        "max_completion_tokens": Setting(64, "a call of the curated tools fits in 64 tokens"),
        "max_prompt_tokens": Setting(768, "dialogue samples are trimmed: time and memory grow with length"),
        "save_steps": Setting(1, "a step costs most of a minute: a kill loses at most one"),
    },
    "loop": {
        "rounds": Setting(2, "two rounds show a round built from the first one's errors"),
        "grpo_steps": Setting(2, "two GRPO steps a round: the loop's mechanism, not its gains"),
        "round_size": Setting(10, "every sample of a round is probed, and its errors judged and expanded: 10 keep "
                                   "those stages to a minute or two"),
        "judge_attempts": Setting(2, "a 135M judge that rambles past its token limit once rarely does better "
                                     "the third time"),
        "expansions_per_error": Setting(1, "one new sample per error seed"),
        "expander_max_tokens": Setting(512, "a 135M expander that rambles in a string stops at half the "
                                            "default"),
        "eval_bfcl_limit": Setting(1, "one entry of each of the 4 default categories"),
    },
}

# One 24 GB GPU, an 8B policy in 4 bits. Memory, for Qwen3-8B (36 layers, 8 KV heads of 128, a
# 152k vocabulary): the nf4 base with its bf16 embeddings and head takes about 6 GB; the KV cache
# of the rollouts about 0.14 MiB per token (bf16). Estimated, not measured on such a card.
GPU_24GB: dict[str, dict[str, Setting]] = {
    "seed": {
        "history_token_budget": Setting(1024, "samples fit the prompt budget below, so training does not trim "
                                              "what the seed kept"),
    },
    "eval": {
        "concurrency": Setting(32, "vLLM batches what is in flight; 32 prompts of ~300 tokens fit an 8B "
                                   "server's KV cache at gpu_memory_utilization 0.85"),
    },
    "train": {
        "quantization": Setting("nf4", "QLoRA: an 8B base in bf16 is 16 GB of weights alone, in nf4 about "
                                       "6 GB with its embeddings and head in bf16"),
        "num_generations": Setting(8, "groups of 8: a prompt solved 1 time in 8 still gives a gradient"),
        "prompts_per_step": Setting(4, "32 rollouts a step, sampled in one batch: (1024 + 256) tokens x 32 x "
                                       "0.14 MiB = about 5.6 GB of KV cache beside the base"),
        "max_prompt_tokens": Setting(1024, "rollouts and the loss pass grow with the prompt; TRL does not "
                                           "truncate it"),
        "max_completion_tokens": Setting(256, "a few calls with [policy] thinking = 'off' ('on' needs 512 or "
                                              "more)"),
    },
    "loop": {
        "eval_bfcl_limit": Setting(50, "50 entries of each category, as the experiment: a 95% interval of "
                                       "about +-14 points per category instead of +-22 at 20"),
    },
}

PRESETS: dict[str, dict[str, dict[str, Setting]]] = {"cpu": CPU, "gpu-24gb": GPU_24GB}
PRESET_HELP = {
    "cpu": "A few CPU cores and the embedded model: every size as small as still shows each stage working. "
           "`looptool demo` writes exactly these.",
    "gpu-24gb": "One 24 GB GPU and an ~8B policy trained with QLoRA: set `[policy] model` to its checkpoint "
                "directory, and the generator and judge to it or to endpoints (a second managed model would not "
                "fit beside it). The memory figures are estimated from Qwen3-8B's sizes (36 layers, 8 KV heads of "
                "128, a 152k vocabulary), not measured on such a card.",
}


def preset_values(name: str) -> dict[str, dict[str, Any]]:
    """Section -> field -> value of a preset."""
    return {section: {k: s.value for k, s in fields.items()} for section, fields in check_preset(name).items()}


def check_preset(name: str) -> dict[str, dict[str, Setting]]:
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; presets are: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_config(name: str, preset: str | None = None) -> WorkspaceConfig:
    """The default workspace config, with a preset's values when one is named."""
    config = WorkspaceConfig(name=name)
    if preset is None:
        return config
    for section, values in preset_values(preset).items():
        setattr(config, section, getattr(config, section).model_copy(update=values))
    return WorkspaceConfig.model_validate(config.model_dump())  # validated like a loaded file


def presets_reference() -> list[str]:
    """Markdown lines for docs/CONFIG.md: every preset's values and why."""
    lines = ["## Presets", "",
             "`looptool init DIR --preset NAME` writes the defaults with these values over them "
             "(`looptool/presets.py`); every other field keeps its default.", ""]
    for name, sections in PRESETS.items():
        lines += [f"### `--preset {name}`", "", PRESET_HELP[name], "", "| field | value | why |", "|---|---|---|"]
        for section, fields in sections.items():
            for field, setting in fields.items():
                lines.append(f"| `[{section}] {field}` | `{json.dumps(setting.value)}` | {setting.why} |")
        lines.append("")
    return lines
