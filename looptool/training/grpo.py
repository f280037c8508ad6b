"""GRPO on a round's samples with TRL's GRPOTrainer and a LoRA (or QLoRA) adapter.

One call trains one round: it loads the base policy, continues the adapter the round starts from
(see `rounds.start_adapter`: the round's SFT warm start, else the previous round's adapter),
samples `num_generations` completions per prompt, scores them with the tool-call reward, and
saves the adapter as the round's. Tool schemas are in the rendered prompt; the trainer is never
given `tools=` (it would execute calls in a multi-turn loop). Checkpoints every `save_steps`: a
killed run, started again, resumes from the last one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.config import TrainConfig, WorkspaceConfig
from looptool.training.model import load_policy
from looptool.training.stage import StageResult, common_args, finish, prepare, quiet, say, train_or_resume
from looptool.training.tracking import tracking_env

RewardFn = Callable[..., list[float]]


def grpo_args(train: TrainConfig, max_steps: int | None = None) -> dict[str, Any]:
    """GRPOConfig's arguments that come from `[train]` (the stage adds paths, device and seed)."""
    per_pass, passes = train.grpo_batches()
    return dict(
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        weight_decay=train.weight_decay,
        num_generations=train.num_generations,
        # One prompt's group per forward pass, accumulated over the step's prompts (memory: see sft.py);
        # TRL still samples all of a step's completions in one generation batch. With several processes
        # each takes an equal share of the step (TrainConfig.grpo_batches), so a step keeps its size.
        per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=passes,
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


def skip_steps_without_signal(optimizer_cls: type) -> type:
    """The optimiser class, not stepping when every gradient is zero. A GRPO step whose groups all
    had equal rewards has zero advantages, so zero loss and zero gradients (with beta 0); AdamW would
    still move the weights along its momentum (and decay them), and in a first experiment eleven such
    steps after one with signal undid the warm start (docs/EXPERIMENTS.md, pilot round 1)."""
    import torch

    class SkipWithoutSignal(optimizer_cls):
        def step(self, closure: Any = None) -> Any:
            grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
            if closure is None and not any(bool(torch.any(g != 0)) for g in grads):
                return None
            return super().step(closure)

    SkipWithoutSignal.__name__ = f"SkipWithoutSignal{optimizer_cls.__name__}"
    return SkipWithoutSignal


def rows_with_signal(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The micro-batch without its completions of zero advantage (their groups' rewards were all
    equal), or None when no completion is left; `inputs` unchanged where that would change the loss.

    With no KL term such a completion adds nothing to the loss or its gradient, whatever the forward
    pass computes, so its forward and backward passes -- most of a CPU step's time -- can be left out.
    Exactly so for the "dapo" loss, whose normaliser counts the generation batch's tokens from the
    inputs; the other loss types average over the micro-batch's rows or tokens, so there only a
    micro-batch with no signal at all is left out. TRL shuffles a step's completions across its
    micro-batches, so most micro-batches hold some of each kind."""
    import torch

    if trainer.beta != 0 or trainer.aux_loss_enabled:
        return inputs
    advantages = inputs["advantages"]
    keep = advantages != 0 if advantages.dim() == 1 else (advantages != 0).any(dim=1)
    if not bool(keep.any()):
        return None
    if bool(keep.all()) or trainer.loss_type != "dapo" or trainer.top_entropy_quantile < 1.0:
        return inputs
    rows = advantages.size(0)
    return {k: v[keep] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.size(0) == rows else v
            for k, v in inputs.items()}


def policy_trainer_class(trainer_class: type, *, loss_autocast: bool) -> type:
    """TRL's trainer with the optimiser of `skip_steps_without_signal`, no loss passes for
    completions without signal (`rows_with_signal`), and (`loss_autocast`) its loss -- forward and
    backward passes -- under bfloat16 autocast on the CPU, sampling left out: there bf16 autocast
    made the loss's passes faster (x0.67) but `generate` slower (x1.44; docs/BENCHMARKS.md,
    benchmarks/cpu_bf16.py).

    With several processes the loss passes are left out only for a whole step that has no signal in
    any process: TRL's loss gathers metrics from every process, and DDP averages the gradients in
    the step's last backward pass, so all processes must make the same passes with the same rows."""
    import torch

    class PolicyTrainer(trainer_class):
        step_has_signal = True  # several processes: whether any completion of the step, in any process, has signal

        @staticmethod
        def get_optimizer_cls_and_kwargs(args: Any, model: Any = None) -> tuple[Any, Any]:
            optimizer_cls, kwargs = trainer_class.get_optimizer_cls_and_kwargs(args, model)
            return skip_steps_without_signal(optimizer_cls), kwargs

        def _generate_and_score_completions(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            output = super()._generate_and_score_completions(*args, **kwargs)
            if self.accelerator.num_processes > 1:  # the step's whole generation batch, one share per process
                mine = (output["advantages"] != 0).any().float().reshape(1)
                self.step_has_signal = bool(self.accelerator.reduce(mine, reduction="sum").item() > 0)
            return output

        def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            if self.accelerator.num_processes == 1:
                inputs = rows_with_signal(self, inputs)
            elif not self.step_has_signal and self.beta == 0 and not self.aux_loss_enabled:
                inputs = None
            if inputs is None:  # zero loss, and zero gradients for the optimiser to see
                return sum((p * 0).sum() for p in model.parameters() if p.requires_grad)
            if not loss_autocast:
                return super().compute_loss(model, inputs, *args, **kwargs)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return super().compute_loss(model, inputs, *args, **kwargs)

    PolicyTrainer.__name__ = f"Policy{trainer_class.__name__}"
    return PolicyTrainer


def rollout_function(stage: Any, train: TrainConfig) -> Any:
    """`[train] rollouts` resolved: a MergedCopySampler, or None for TRL's own `generate`."""
    mode = train.rollouts
    if mode == "auto":
        mode = "merged-copy" if not stage.device.cuda and not stage.device.quantized else "generate"
    if mode == "generate":
        return None
    if stage.device.quantized:
        raise ValueError("[train] rollouts = 'merged-copy' needs a full-precision base; set quantization = 'none'")
    from looptool.training.rollout import MergedCopySampler

    return MergedCopySampler(stage.model_dir, bf16=stage.device.cpu_bf16)


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
    say(stage.describe())
    model = load_policy(stage.model_dir, train, stage.device, start_adapter=stage.start)
    args = GRPOConfig(**grpo_args(train, max_steps), **common_args(stage, config))
    trainer_class = policy_trainer_class(GRPOTrainer, loss_autocast=stage.device.cpu_bf16)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is TRL's documented hook, marked experimental
    with tracking_env(workspace, round, "grpo"):
        trainer = trainer_class(
            model=model,
            reward_funcs=reward_fn or reward_function(train.reward),
            args=args,
            train_dataset=Dataset.from_list([{"prompt": r["prompt"], "label": r["label"]} for r in stage.data.rows]),
            processing_class=stage.tokenizer,
            callbacks=[StepLogger(workspace, round, "grpo", stage.device, fresh=not stage.resume)],
            rollout_func=rollout_function(stage, train),
        )
        quiet(trainer)
        reference = kl_reference(workspace, train, stage.start)
        if reference is not None:
            anchor_reference(model, reference)
        train_or_resume(stage, trainer)
    return finish(stage, trainer, {"reward": train.reward if reward_fn is None else getattr(reward_fn, "__name__", "custom"),
                                   **({"kl_reference": str(reference or stage.start)} if train.beta else {})})


def kl_reference(workspace: Path, train: TrainConfig, start: Path | None) -> Path | None:
    """The adapter to load into TRL's reference, or None to keep TRL's own (a copy of the adapter
    the round starts from, or the base model for a fresh adapter): the warm start's adapter when
    `[train] kl_reference` asks for it, there is one, and the round does not start from it."""
    from looptool.training.rounds import adapter_dir

    if not train.beta or train.kl_reference != "warm_start" or start is None:
        return None
    warm = adapter_dir(workspace, 1, "sft")
    return warm if warm.is_dir() and warm.resolve() != start.resolve() else None


def anchor_reference(model: Any, adapter: Path) -> None:
    """Load `adapter`'s weights into the "ref" adapter that TRL adds to a PEFT policy it continues
    when beta > 0 (a copy of the starting adapter), so that the KL term measures the distance to
    `adapter` instead; the policy's own adapter is left as it is."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    if "ref" not in getattr(model, "peft_config", {}):
        raise ValueError("TRL made no reference adapter to load the warm start into (it does so for a PEFT policy "
                         "it continues, with beta > 0)")
    loaded = set_peft_model_state_dict(model, load_file(str(adapter / "adapter_model.safetensors")), adapter_name="ref")
    missing = [k for k in loaded.missing_keys if ".ref." in k]
    if missing:
        raise ValueError(f"the adapter in {adapter} does not fit the policy's reference adapter: {missing[0]} is missing")
