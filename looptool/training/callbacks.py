"""Per-step metrics of a training run, into the workspace database as they happen, and one
progress line per step on stdout (which the parent process streams).

With several training processes (`[train] processes`) every process runs these callbacks; only the
first writes rows and prints. TRL gathers a step's metrics from all processes before it logs them,
so the first process's rows are the whole step's (its step time and peak memory are its own)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from looptool.config import DB_FILE
from looptool.store import Store
from looptool.training.model import Device, peak_memory_mb

SHOWN = ("loss", "reward", "reward_std", "frac_reward_zero_std", "kl", "completions/mean_length")


class StepLogger(TrainerCallback):
    """Writes each logged step's numeric metrics, plus step time and peak memory, to `train_steps`."""

    def __init__(self, workspace: Path, round: int, stage: str, device: Device, *, fresh: bool,
                 echo: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self.workspace, self.round, self.stage, self.device, self.echo, self.fresh = workspace, round, stage, device, echo, fresh
        self.store: Store | None = None  # opened by the first process only
        self._last = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.store = Store.open(self.workspace / DB_FILE)
        if self.fresh:  # a new run of the stage: the steps of an earlier one would mix with ours
            self.store.clear_train_steps(self.round, self.stage)
        self._last = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.store is None or not logs or "train_runtime" in logs:  # the end-of-training summary is not a step
            return
        now = time.monotonic()
        metrics = {k: float(v) for k, v in logs.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        metrics["step_time_s"] = round(now - self._last, 3)
        metrics["peak_memory_mb"] = round(peak_memory_mb(self.device), 1)
        self._last = now
        self.store.add_train_step(self.round, self.stage, state.global_step, metrics)
        shown = " ".join(f"{k.split('/')[-1]} {metrics[k]:.4g}" for k in SHOWN if k in metrics)
        self.echo(f"{self.stage} step {state.global_step}/{state.max_steps}: {shown} "
                  f"({metrics['step_time_s']:.1f}s, peak {metrics['peak_memory_mb']:.0f} MiB)")

    def on_train_end(self, args, state, control, **kwargs):
        if self.store is not None:
            self.store.close()
            self.store = None
