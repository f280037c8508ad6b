"""GRPO's rollouts from a merged copy of the policy, for the CPU.

TRL samples a step's groups with `generate` on the PEFT model being trained: every completion
pays a LoRA matmul per linear layer per token, and every prompt is prefilled once per completion
of its group. On a 2-core CPU that was most of a GRPO step (docs/BENCHMARKS.md, "GRPO rollouts").
`MergedCopySampler` is TRL's `rollout_func` instead:

* a second copy of the base model, in bfloat16 where the CPU computes it natively (float32
  elsewhere), holds the policy's current weights: before a step's first rollout each adapted
  layer's weight is set to `base + LoRA delta`, summed in float32 and rounded once;
* each distinct prompt of the step is prefilled once and its cache repeated for its group; all
  groups then decode as one batch.

It samples from the policy as it is at that step, the same distribution as TRL's `generate` up to
bfloat16 rounding (checked against float32 PEFT in tests/integration/test_training_trl.py).
Nothing else of the step changes: TRL computes the loss on the PEFT model as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PEFT_PREFIX = "base_model.model."


class MergedCopySampler:
    """`rollout_func` for TRL's GRPOTrainer: returns prompt ids and sampled completion ids (to and
    including the first end-of-sequence token), and no log-probs (TRL computes its own)."""

    def __init__(self, model_dir: Path, *, bf16: bool) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=self.dtype).eval()
        self.model.requires_grad_(False)
        self.synced_step: int | None = None

    def sync(self, policy: Any) -> None:
        """Set every adapted layer of the copy to the policy's base weight plus its LoRA delta."""
        import torch
        from peft.tuners.lora import LoraLayer

        layers = dict(self.model.named_modules())
        with torch.no_grad():
            for name, module in policy.named_modules():
                if not isinstance(module, LoraLayer):
                    continue
                target = layers[name.removeprefix(PEFT_PREFIX)]
                weight = module.get_base_layer().weight.detach().float()
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).float()
                target.weight.copy_(weight.to(self.dtype))

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, Any]:
        if trainer.state.global_step != self.synced_step:
            self.sync(trainer.model)
            self.synced_step = trainer.state.global_step
        prompt_ids = trainer.processing_class(text=prompts)["input_ids"]  # as TRL tokenizes text prompts
        completion_ids = self.sample(prompt_ids, trainer.generation_config, trainer.eos_token_ids,
                                     trainer.processing_class.pad_token_id)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    def sample(self, prompt_ids: list[list[int]], generation_config: Any, eos_ids: list[int],
               pad_id: int) -> list[list[int]]:
        """One completion per row of `prompt_ids`; equal neighbouring rows (a group) share one prefill."""
        import torch
        from transformers import DynamicCache

        distinct: list[list[int]] = []
        row_of: list[int] = []  # which distinct prompt each row is
        for ids in prompt_ids:
            if not distinct or ids != distinct[-1]:
                distinct.append(ids)
            row_of.append(len(distinct) - 1)
        width = max(len(ids) for ids in distinct)
        padded = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in distinct])  # left padding
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in distinct])
        rows = torch.tensor(row_of)
        with torch.no_grad():
            cache = DynamicCache()
            if width > 1:  # prefill all but the last token once per distinct prompt; generate takes the last
                positions = (mask[:, :-1].cumsum(-1) - 1).clamp(min=0)
                self.model(input_ids=padded[:, :-1], attention_mask=mask[:, :-1], position_ids=positions,
                           past_key_values=cache, use_cache=True)
                cache.batch_select_indices(rows)
            output = self.model.generate(input_ids=padded[rows], attention_mask=mask[rows],
                                         past_key_values=cache if width > 1 else None,
                                         generation_config=generation_config)
        completions = output[:, width:].tolist()
        eos = set(eos_ids)
        out: list[list[int]] = []
        for ids in completions:
            end = next((i for i, token in enumerate(ids) if token in eos), None)
            out.append(ids if end is None else ids[: end + 1])
        return out
