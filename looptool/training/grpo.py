"""GRPO on a round's samples with TRL's GRPOTrainer and a LoRA (or QLoRA) adapter.

One call trains one round: it loads the base policy, continues the adapter the round starts from
(see `rounds.start_adapter`: the round's SFT warm start, else the previous round's adapter),
samples `num_generations` completions per prompt, scores them with the tool-call reward, and
saves the adapter as the round's. Tool schemas are in the rendered prompt; the trainer is never
given `tools=` (it would execute calls in a multi-turn loop). Checkpoints every `save_steps`: a
killed run, started again, resumes from the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.config import TrainConfig, WorkspaceConfig
from looptool.training.model import load_policy
from looptool.training.stage import StageResult, common_args, finish, prepare, quiet

RewardFn = Callable[..., list[float]]


def grpo_args(train: TrainConfig, max_steps: int | None = None) -> dict[str, Any]:
    """GRPOConfig's arguments that come from `[train]` (the stage adds paths, device and seed)."""
    return dict(
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        weight_decay=train.weight_decay,
        num_generations=train.num_generations,
        # One prompt's group per forward pass, accumulated over the step's prompts (memory: see sft.py);
        # TRL still samples all of a step's completions in one generation batch.
        per_device_train_batch_size=train.num_generations,
        gradient_accumulation_steps=train.prompts_per_step,
        num_train_epochs=train.epochs,
        max_steps=max_steps or train.max_steps or -1,
        max_completion_length=train.max_completion_tokens,
        temperature=train.temperature,
        beta=train.beta,
        epsilon=train.epsilon,
        epsilon_high=train.epsilon_high,
        loss_type=train.loss_type,
        remove_unused_columns=False,
    )  # fmt: skip


def loss_autocast(trainer_class: type) -> type:
    """The trainer with its loss (forward and backward passes) under bfloat16 autocast on the CPU,
    and its sampling left in float32: there bf16 autocast made the loss's passes faster (x0.67) but
    sampling slower (x1.44; docs/BENCHMARKS.md, benchmarks/cpu_bf16.py)."""
    import torch

    class LossAutocast(trainer_class):
        def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return super().compute_loss(*args, **kwargs)

    LossAutocast.__name__ = f"LossAutocast{trainer_class.__name__}"
    return LossAutocast


def run_grpo(workspace: Path, config: WorkspaceConfig, round: int, *, max_steps: int | None = None,
             reward_fn: RewardFn | None = None) -> StageResult:
    """Train round `round` with GRPO; returns where its adapter is. `reward_fn` replaces the
    configured reward (for tests that need rewards to differ within a group)."""
    from datasets import Dataset

    from looptool.training.callbacks import StepLogger  # imports transformers: only when training
    from trl import GRPOConfig, GRPOTrainer

    from looptool.training.reward import reward_function

    train = config.train
    stage = prepare(workspace, config, round, "grpo")
    print(stage.describe(), flush=True)
    model = load_policy(stage.model_dir, train, stage.device, start_adapter=stage.start)
    args = GRPOConfig(**grpo_args(train, max_steps), **common_args(stage, config))
    trainer_class = loss_autocast(GRPOTrainer) if stage.device.cpu_bf16 else GRPOTrainer
    trainer = trainer_class(
        model=model,
        reward_funcs=reward_fn or reward_function(train.reward),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"], "label": r["label"]} for r in stage.data.rows]),
        processing_class=stage.tokenizer,
        callbacks=[StepLogger(workspace, round, "grpo", stage.device, fresh=not stage.resume)],
    )
    quiet(trainer)
    trainer.train(resume_from_checkpoint=True if stage.resume else None)
    return finish(stage, trainer, {"reward": train.reward if reward_fn is None else getattr(reward_fn, "__name__", "custom")})
