"""The loop graph's state and its run context (graph.py holds the nodes that read them).

`LoopState` is what the checkpointer keeps between nodes: the round and counters, never samples.
`LoopContext` is what a run of the graph works with but does not checkpoint (the workspace, its
settings and store, the arm, how a round is trained, where a pause request is taken); it is given
to each run as LangGraph's runtime context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypedDict

from looptool.config import WorkspaceConfig
from looptool.loop.arms import LOOP
from looptool.loop.verify import VerifyContext
from looptool.store import Store


class LoopState(TypedDict, total=False):
    round: int  # the round being worked on
    rounds: int  # the last round to run
    judged: int  # (from the verify subgraph)
    applied: dict[str, int]  # (from the verify subgraph)


def _train_round(workspace: Path, config: WorkspaceConfig, round: int, log: Callable[[str], None],
                 max_steps: int | None) -> None:
    """GRPO for the round in a child process (at most `max_steps` steps when given), after the
    SFT warm start where it is wanted."""
    from looptool.training.process import make_room_for_training, run_stage
    from looptool.training.sft import warm_start_due

    make_room_for_training(workspace, config, log)
    if warm_start_due(workspace, config, round):
        run_stage(workspace, "sft", 1, echo=log)
    run_stage(workspace, "grpo", round, max_steps=max_steps, echo=log)


@dataclass
class LoopContext:
    workspace: Path
    config: WorkspaceConfig
    store: Store
    arm: str = LOOP  # see arms.py
    log: Callable[[str], None] = print
    today: str = field(default_factory=lambda: date.today().isoformat())
    # How a round is trained (workspace, config, round, log, max_steps); tests of the control flow
    # may pass another.
    train: Callable[[Path, WorkspaceConfig, int, Callable[[str], None], int | None], None] = _train_round
    # Called with a node's name as the node ends (inside it, before its checkpoint): where a pause
    # request is taken (see graph.run_loop).
    pause_point: Callable[[str], None] = lambda node: None

    def verify_context(self) -> VerifyContext:
        """The context of the verify subgraph in this run: its pause point is the loop's, as it ends."""
        return VerifyContext(self.workspace, self.config, self.store, self.today, self.log,
                             on_applied=lambda: self.pause_point("verify"), use_judge=self.arm != "no-jglv")
