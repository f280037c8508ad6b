"""GRPO on a round's samples with TRL's GRPOTrainer and a LoRA (or QLoRA) adapter.

One call trains one round: it loads the base policy, continues the adapter the round starts from
(see `rounds.start_adapter`), samples `num_generations` completions per prompt, scores them with
the tool-call reward, and saves the adapter as the round's. Tool schemas are in the rendered
prompt; the trainer is never given `tools=` (it would execute calls in a multi-turn loop).
Checkpoints every `save_steps`: a killed run, started again, resumes from the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looptool.config import DB_FILE, WorkspaceConfig
from looptool.schema import Sample
from looptool.store import Store
from looptool.training import rounds
from looptool.training.callbacks import StepLogger
from looptool.training.dataset import training_rows
from looptool.training.model import device_for, load_policy
from looptool.training.templates import PromptRenderer

RewardFn = Callable[..., list[float]]


class TrainingError(Exception):
    """Training cannot start or did not finish; the message says why in one line."""


@dataclass
class StageResult:
    adapter: Path
    steps: int
    rows: int
    too_long: int
    resumed: bool
    model: Any = None  # the trained PEFT model, still in memory


def round_samples(store: Store, round: int) -> list[Sample]:
    """The round's data: its recorded sample ids, or (before the loop records any) every active
    training-split sample."""
    info = store.get_round(round)
    if info is not None and info.data_ids:
        return [store.get_sample(i) for i in info.data_ids]
    return list(store.iter_samples(split="train", active=True))


def base_model_dir(config: WorkspaceConfig) -> Path:
    from looptool.config import ManagedModel
    from looptool.training.templates import local_model_dir

    name = config.train.model
    if name is None:
        if not isinstance(config.policy, ManagedModel):
            raise TrainingError("the policy is an endpoint; set [train] model to a local checkpoint directory to train")
        name = config.policy.model
    path = local_model_dir(name)
    if path is None:
        raise TrainingError(f"[train] model {name!r} is neither the embedded model nor a checkpoint directory")
    return path


def run_grpo(workspace: Path, config: WorkspaceConfig, round: int, *, max_steps: int | None = None,
             reward_fn: RewardFn | None = None) -> StageResult:
    """Train round `round` with GRPO; returns where its adapter is. `reward_fn` replaces the
    configured reward (for tests that need rewards to differ within a group)."""
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from looptool.training.reward import reward_function

    train = config.train
    model_dir = base_model_dir(config)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    renderer = PromptRenderer(tokenizer)
    with Store.open(workspace / DB_FILE) as store:
        data = training_rows(round_samples(store, round), renderer, train.max_prompt_tokens)
        start = rounds.start_adapter(workspace, store, round, "grpo")
    if not data.rows:
        raise TrainingError(f"round {round} has no training samples that fit {train.max_prompt_tokens} prompt tokens"
                            f" ({data.too_long} too long); run 'looptool seed' first")
    from datasets import Dataset

    device = device_for(train)
    ckpt = rounds.checkpoint_dir(workspace, round, "grpo")
    resume = rounds.has_checkpoint(ckpt)
    print(f"grpo round {round}: {len(data.rows)} prompts ({data.too_long} too long), {device.description}, "
          f"start {'checkpoint in ' + str(ckpt) if resume else (start or 'fresh adapter')}", flush=True)
    model = load_policy(model_dir, train, device, start_adapter=start)
    args = GRPOConfig(
        output_dir=str(ckpt),
        learning_rate=train.learning_rate,
        num_generations=train.num_generations,
        per_device_train_batch_size=train.num_generations * train.prompts_per_step,
        gradient_accumulation_steps=1,
        num_train_epochs=train.epochs,
        max_steps=max_steps or train.max_steps or -1,
        max_completion_length=train.max_completion_tokens,
        temperature=train.temperature,
        beta=train.beta,
        epsilon=train.epsilon,
        epsilon_high=train.epsilon_high,
        loss_type=train.loss_type,
        save_strategy="steps",
        save_steps=train.save_steps,
        logging_steps=1,
        report_to="none",
        seed=train.seed,
        use_cpu=not device.cuda,
        bf16=device.cuda,
        gradient_checkpointing=device.cuda,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_fn or reward_function(train.reward),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"], "label": r["label"]} for r in data.rows]),
        processing_class=tokenizer,
        callbacks=[StepLogger(workspace, round, "grpo", device)],
    )
    quiet(trainer)
    trainer.train(resume_from_checkpoint=True if resume else None)
    target = rounds.adapter_dir(workspace, round, "grpo")
    rounds.save_adapter(trainer.model, target)
    summary = {"steps": trainer.state.global_step, "prompts": len(data.rows), "too_long": data.too_long,
               "start": str(start) if start else None, "device": device.description}
    with Store.open(workspace / DB_FILE) as store:
        rounds.record_stage(store, workspace, round, "grpo", summary)
    rounds.clear_checkpoints(ckpt)
    print(f"grpo round {round}: done after {trainer.state.global_step} steps; adapter {target}", flush=True)
    return StageResult(target, trainer.state.global_step, len(data.rows), data.too_long, resume, trainer.model)


def quiet(trainer: Any) -> None:
    """Our StepLogger prints one line per step; transformers' printer would add a dict per step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
