"""What the SFT and GRPO stages share: which base model and samples, the rows, the starting
adapter, the device, checkpoints and resuming, and saving and recording the result."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from looptool.config import DB_FILE, WorkspaceConfig
from looptool.errors import TrainingError as TrainingError  # re-exported: training's callers import it from here
from looptool.policy.prompt import PromptRenderer
from looptool.policy.weights import base_model_dir
from looptool.schema import Sample
from looptool.store import Store
from looptool.training import rounds
from looptool.training.dataset import Rows, seed_pool, training_rows
from looptool.training.model import Device, device_for
from looptool.training.tracking import check_trackers, tracking_args


def is_main_process() -> bool:
    """Under `accelerate launch` (`[train] processes` > 1) every process runs the stage; only the
    first (RANK 0) writes step rows and the adapter, records the stage and prints progress."""
    return int(os.environ.get("RANK", "0")) == 0


def say(line: str) -> None:
    """A progress line of the stage, printed once however many processes train."""
    if is_main_process():
        print(line, flush=True)


@dataclass
class Stage:
    """A stage (sft or grpo) of a round, ready to train."""

    workspace: Path
    round: int
    name: str
    model_dir: Path
    tokenizer: Any
    data: Rows
    start: Path | None  # the adapter training continues, None for a fresh one
    device: Device
    checkpoints: Path
    resume: bool  # a checkpoint of an interrupted run exists

    def describe(self) -> str:
        start = f"checkpoint in {self.checkpoints}" if self.resume else (self.start or "a fresh adapter")
        return (f"{self.name} round {self.round}: {len(self.data.rows)} samples ({self.data.too_long} too long), "
                f"{self.device.description}, from {start}")


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




def prepare(workspace: Path, config: WorkspaceConfig, round: int, name: str) -> Stage:
    from transformers import AutoTokenizer

    if round < 1:
        raise TrainingError(f"--round must be 1 or more (round 0 is the base model), got {round}")
    check_trackers(config)
    model_dir = base_model_dir(config)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    with Store.open(workspace / DB_FILE) as store:
        renderer = PromptRenderer(tokenizer, thinking=config.policy.thinking)
        seed_data = name == "sft" and config.train.sft_data == "seed"
        samples = [store.get_sample(i) for i in seed_pool(store)] if seed_data else round_samples(store, round)
        data = training_rows(samples, renderer, config.train.max_prompt_tokens)
        start = rounds.start_adapter(workspace, store, round, name)
    if not data.rows:
        raise TrainingError(f"round {round} has no training samples that fit {config.train.max_prompt_tokens} prompt "
                            f"tokens ({data.too_long} too long); run 'looptool seed' first")
    checkpoints = rounds.checkpoint_dir(workspace, round, name)
    device = device_for(config.train)
    if config.train.deepspeed_config and not device.cuda:
        raise TrainingError(f"[train] deepspeed_config ({config.train.deepspeed_config}) is for CUDA, which this "
                            "machine lacks; remove it to train here")
    return Stage(workspace, round, name, model_dir, tokenizer, data, start, device, checkpoints,
                 rounds.has_checkpoint(checkpoints))


def finish(stage: Stage, trainer: Any, extra: dict[str, Any] | None = None) -> StageResult:
    """Save the adapter whole, record the stage on its round, drop the checkpoints (the first
    process; the others trained the same weights)."""
    target = rounds.adapter_dir(stage.workspace, stage.round, stage.name)
    if not is_main_process():
        return StageResult(target, trainer.state.global_step, len(stage.data.rows), stage.data.too_long, stage.resume,
                           trainer.model)
    rounds.save_adapter(trainer.model, target)
    summary = {"steps": trainer.state.global_step, "samples": len(stage.data.rows), "too_long": stage.data.too_long,
               "start": str(stage.start) if stage.start else None, "device": stage.device.description,
               "finished": datetime.now(timezone.utc).isoformat(), **(extra or {})}
    with Store.open(stage.workspace / DB_FILE) as store:
        rounds.record_stage(store, stage.workspace, stage.round, stage.name, summary)
    rounds.clear_checkpoints(stage.checkpoints)
    print(f"{stage.name} round {stage.round}: done after {trainer.state.global_step} steps; adapter {target}", flush=True)
    return StageResult(target, trainer.state.global_step, len(stage.data.rows), stage.data.too_long, stage.resume,
                       trainer.model)


def train_or_resume(stage: Stage, trainer: Any) -> None:
    """Train, or go on from the last checkpoint of a killed run.

    Two things transformers' resume does not do for us: with a second adapter beside the policy's
    (TRL's frozen "ref" copy when beta > 0) a checkpoint holds the policy's adapter at its top
    level and the other in a folder of its own, and the resume loads only the adapters in
    folders -- the policy would go on from the round's start; so the policy's adapter is loaded
    here. And a checkpoint of the last step (killed before the adapter was saved) is the end of
    training, where TRL's GRPO trainer went on to train one step more."""
    last = rounds.last_checkpoint(stage.checkpoints) if stage.resume else None
    if last is None:
        trainer.train()
        return
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers.trainer_callback import TrainerState

    set_peft_model_state_dict(trainer.model, load_file(str(last / "adapter_model.safetensors")), adapter_name="default")
    state = TrainerState.load_from_json(str(last / "trainer_state.json"))
    if 0 < trainer.args.max_steps <= state.global_step:
        trainer.state = state
        return
    trainer.train(resume_from_checkpoint=str(last))


def quiet(trainer: Any) -> None:
    """Our StepLogger prints one line per step; transformers' printer would add a dict per step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def data_seed(stage: Stage, config: WorkspaceConfig) -> int:
    """The trainer's seed: `[train] seed` for round 1, one more each round after. TRL draws a
    round's prompt order from it, so a round that trains on the same pool as the one before (the
    static arm: the whole seed pool every round) does not see the same first prompts again."""
    return config.train.seed + stage.round - 1


def common_args(stage: Stage, config: WorkspaceConfig) -> dict[str, Any]:
    """Trainer arguments both stages share. bf16 on the CPU: the trainer's mixed precision autocasts
    every forward pass, sampling too, and on the CPU sampling under bf16 autocast was slower than in
    float32 (benchmarks/cpu_bf16.py); so SFT takes it, and GRPO autocasts only its loss (grpo.py)."""
    args = dict(
        output_dir=str(stage.checkpoints), save_strategy="steps", save_steps=config.train.save_steps,
        logging_steps=1, seed=data_seed(stage, config), use_cpu=not stage.device.cuda,
        bf16=stage.device.cuda or (stage.device.cpu_bf16 and stage.name == "sft"), gradient_checkpointing=stage.device.cuda, disable_tqdm=True,
        dataloader_num_workers=0, **tracking_args(config, stage.round, stage.name),
    )  # fmt: skip
    if config.train.processes > 1:
        # Every trainable weight is a LoRA weight that every forward pass uses: DDP need not search the
        # graph for unused ones, and non-reentrant checkpointing is the kind that works under DDP.
        args.update(ddp_find_unused_parameters=False, gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.train.deepspeed_config:
        args["deepspeed"] = str(Path(config.train.deepspeed_config).expanduser().resolve())
    return args
