"""The loop as a child process of the TUI: start it, ask it to pause, stop it.

The TUI never runs the loop in its own process: the loop trains, serves models and may run for
hours, and it must outlive a closed terminal. It is started as `looptool loop -w WS` (or, to
release the review gate, `looptool review --accept -w WS`) in a session of its own, with its
output going to `logs/tui-loop.log` in the workspace.

* pause: the file request of `loop.control.request_pause`; the loop stops after its current node
  with its checkpoint saved. Any loop on the workspace takes it, whoever started it.
* stop: SIGTERM to the child's process group (the loop and the trainer it started); the loop is
  resumable after a kill by design, so nothing is lost but the node's work so far. The vLLM
  servers it started run in sessions of their own and stay up (`left_running` names them).
* a loop started elsewhere (another terminal) is seen through the workspace's loop lock
  (`loop.control.running_loop_pid`): start refuses, pause reaches it, stop does not touch it.

The commands are injectable, so tests drive a fake loop that only writes rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from looptool.loop.control import pause_requested, request_pause, running_loop_pid

LOG_NAME = "tui-loop.log"


def default_loop_command(workspace: Path) -> list[str]:
    """`looptool loop -w WS` with this interpreter."""
    return [sys.executable, "-m", "looptool.cli", "loop", "-w", str(workspace)]


def default_review_command(workspace: Path) -> list[str]:
    """`looptool review --accept -w WS`: apply the reviewed verdicts and go on with the loop."""
    return [sys.executable, "-m", "looptool.cli", "review", "--accept", "-w", str(workspace)]


@dataclass(frozen=True)
class ProcessState:
    """What the status line shows about the child."""

    running: bool
    pid: int | None
    what: str  # "loop", "review --accept", or "" before the first start
    exit_code: int | None
    pause_requested: bool
    elsewhere_pid: int | None = None  # a loop on this workspace that was not started here


class LoopProcess:
    """Starts, pauses and stops the loop of one workspace as a child process."""

    def __init__(self, workspace: Path, *, loop_command: Sequence[str] | None = None,
                 review_command: Sequence[str] | None = None) -> None:
        self.workspace = Path(workspace)
        self.loop_command = list(loop_command) if loop_command else default_loop_command(self.workspace)
        self.review_command = list(review_command) if review_command else default_review_command(self.workspace)
        self._proc: subprocess.Popen | None = None
        self._what = ""

    @property
    def log_path(self) -> Path:
        return self.workspace / "logs" / LOG_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def state(self) -> ProcessState:
        proc = self._proc
        code = None if proc is None else proc.poll()
        running = proc is not None and code is None
        elsewhere = None if running else running_loop_pid(self.workspace)
        return ProcessState(running=running, pid=None if proc is None else proc.pid, what=self._what, exit_code=code,
                            pause_requested=pause_requested(self.workspace), elsewhere_pid=elsewhere)

    def start(self, *, release_review: bool = False) -> int:
        """Start the loop (or, with release_review, `review --accept`); returns the pid.
        Raises RuntimeError when a loop already runs on the workspace, started here or elsewhere."""
        if self.running:
            raise RuntimeError(f"the loop is already running (pid {self._proc.pid})")  # type: ignore[union-attr]
        elsewhere = running_loop_pid(self.workspace)
        if elsewhere is not None:
            raise RuntimeError(f"a loop started elsewhere runs on this workspace (pid {elsewhere or '?'}); "
                               "p pauses it")
        command = self.review_command if release_review else self.loop_command
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            # A session of its own: the loop outlives the TUI, and a stop reaches its whole group.
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, cwd=os.getcwd())
        self._what = "review --accept" if release_review else "loop"
        return self._proc.pid

    def pause(self) -> None:
        """Ask the running loop to stop after its current node."""
        request_pause(self.workspace)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the child's process group, SIGKILL after `timeout` s; returns its exit code
        (None when nothing ran)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                self._signal(proc, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def left_running(self) -> str | None:
        """The servers of the workspace still up (a stopped loop leaves its vLLM servers, which run in
        sessions of their own), in one line with how to stop them; None when none is."""
        from looptool.config import ConfigError, load_config
        from looptool.serving.server import left_running

        try:
            return left_running(self.workspace, load_config(self.workspace))
        except ConfigError:
            return None

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # the child leads its own session, so its pgid is its pid
        except ProcessLookupError:
            pass
