"""SFT warm start: LoRA fine-tuning on the samples' labels before a round's GRPO.

A model that cannot yet call tools (the embedded 135M model) gets reward 0 on every completion,
so every GRPO group has zero variance and learns nothing. A short supervised pass on the seed
labels (loss on the answer only, not the prompt) gives it the call format first. The adapter is
saved as the round's warm start (`adapters/round-R-sft`), which that round's GRPO continues.
"""

from __future__ import annotations

from pathlib import Path

from looptool.config import EMBEDDED_MODEL, ManagedModel, WorkspaceConfig
from looptool.training.model import load_policy
from looptool.training.rounds import adapter_dir
from looptool.training.stage import StageResult, common_args, finish, prepare, quiet, say, train_or_resume
from looptool.training.tracking import tracking_env


def warm_start_wanted(config: WorkspaceConfig) -> bool:
    """'auto': on for the embedded model, which cannot call tools out of the box."""
    if config.train.warm_start != "auto":
        return config.train.warm_start == "on"
    model = config.train.model or (config.policy.model if isinstance(config.policy, ManagedModel) else None)
    return model == EMBEDDED_MODEL


def warm_start_due(workspace: Path, config: WorkspaceConfig, round: int) -> bool:
    """Whether the round's GRPO has to run the SFT warm start first: round 1 of a policy that wants
    one (`warm_start_wanted`), while the workspace has no round-1 warm start adapter yet."""
    return round == 1 and warm_start_wanted(config) and not adapter_dir(workspace, 1, "sft").is_dir()


def run_sft(workspace: Path, config: WorkspaceConfig, round: int, *, max_steps: int | None = None) -> StageResult:
    from datasets import Dataset

    from looptool.training.callbacks import StepLogger  # imports transformers: only when training
    from trl import SFTConfig, SFTTrainer

    train = config.train
    stage = prepare(workspace, config, round, "sft")
    say(stage.describe())
    model = load_policy(stage.model_dir, train, stage.device)
    args = SFTConfig(
        learning_rate=train.sft_learning_rate,
        # One sequence per forward pass, accumulated to the batch: the logits of a batch of long
        # prompts over a 49k vocabulary (float32 on the CPU) alone outgrow a 24 GB machine. With several
        # processes each accumulates its share of the batch.
        per_device_train_batch_size=1,
        gradient_accumulation_steps=train.sft_batch_size // train.processes,
        max_steps=max_steps or train.sft_max_steps,
        max_length=train.max_prompt_tokens + train.max_completion_tokens,
        completion_only_loss=True,  # learn the answer, not the prompt
        packing=False,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(4, max(1, (max_steps or train.sft_max_steps) // 10)),
        **common_args(stage, config),
    )  # fmt: skip
    with tracking_env(workspace, round, "sft"):
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                                             for r in stage.data.rows]),
            processing_class=stage.tokenizer,
            callbacks=[StepLogger(workspace, round, "sft", stage.device, fresh=not stage.resume)],
        )
        quiet(trainer)
        train_or_resume(stage, trainer)
    return finish(stage, trainer)
