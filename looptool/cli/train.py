"""`looptool train`: the SFT warm start and GRPO of a round, each in a process of its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, TrainRound, _user_errors, _open_workspace
from looptool.store import Store


train_app = typer.Typer(
    help="Train the policy's LoRA/QLoRA adapter for a round: an SFT warm start, then GRPO. Each stage runs in a "
    "process of its own; settings are in the \\[train] section of looptool.toml.",
    no_args_is_help=True,
)

MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many optimiser steps.")]


def _train(workspace: Path, stage: str, round: int, max_steps: int | None) -> None:
    from looptool.training.process import make_room_for_training, run_stage
    from looptool.training.sft import warm_start_due

    config, db_path = _open_workspace(workspace)
    make_room_for_training(workspace, config, typer.echo)
    if stage == "grpo" and warm_start_due(workspace, config, round):
        typer.echo("the policy cannot call tools yet, so round 1 starts with the SFT warm start "
                   "([train] warm_start = \"off\" skips it)")
        _train(workspace, "sft", round, None)
    with Store.open(db_path) as store:
        store.log_event("info", "train", f"{stage} round {round}: started")
    started = time.monotonic()
    run_stage(workspace, stage, round, max_steps=max_steps, echo=typer.echo)
    with Store.open(db_path) as store:
        steps = store.train_steps(round, stage)
        info = store.get_round(round)
        message = f"{stage} round {round}: {len(steps)} steps logged in {time.monotonic() - started:.0f}s"
        store.log_event("info", "train", message)
    last = steps[-1] if steps else {}
    shown = ", ".join(f"{k} {last[k]:.4g}" for k in ("loss", "reward", "frac_reward_zero_std") if k in last)
    typer.echo(message + (f"; last step: {shown}" if shown else ""))
    if stage == "grpo" and info is not None:
        typer.echo(f"round {round} adapter: {workspace / info.adapter_path}")


@train_app.command("sft")
@_user_errors
def train_sft(workspace: Workspace = Path("."), round: TrainRound = 1, max_steps: MaxSteps = None) -> None:
    """SFT warm start on the round's samples, or every seed sample with [train] sft_data = "seed"
    (loss on the answers only): gives a model that cannot call tools yet the call format, so GRPO
    gets rewards that differ. Saved as adapters/round-R-sft,
    which the round's GRPO continues. Resumes from its last checkpoint if killed."""
    _train(workspace, "sft", round, max_steps)


@train_app.command("grpo")
@_user_errors
def train_grpo(workspace: Workspace = Path("."), round: TrainRound = 1, max_steps: MaxSteps = None) -> None:
    """GRPO with the binary tool-call reward on the round's samples; the adapter becomes the round's
    (adapters/round-R). Starts from the round's SFT warm start if there is one, else from the
    previous round's adapter. For the embedded model, round 1 runs the SFT warm start first
    (\\[train] warm_start). Per-step metrics go to the workspace database. Resumes if killed."""
    _train(workspace, "grpo", round, max_steps)
