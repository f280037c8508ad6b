"""Curves where ML users already look: TRL's `report_to` (`[train] report_to`), beside the step
rows that callbacks.py writes to the workspace database either way.

    <workspace>/logs/tensorboard/round-R-<stage>/   TensorBoard event files of a stage
    <workspace>/logs/trackio/                        Trackio's local store (unless TRACKIO_DIR is set)

TensorBoard: `tensorboard --logdir <workspace>/logs/tensorboard`. Trackio: project = the
workspace's name, run = round-R-<stage>; `TRACKIO_DIR=<workspace>/logs/trackio trackio show`.
Nothing is sent to the Hub: no Trackio Space, live or static.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from looptool.config import WorkspaceConfig

EXTRA = {"tensorboard": "tensorboard", "trackio": "trackio"}  # tracker -> the module it needs


def tensorboard_dir(workspace: Path, round: int, stage: str) -> Path:
    return workspace / "logs" / "tensorboard" / f"round-{round}-{stage}"


def check_trackers(config: WorkspaceConfig) -> None:
    """A chosen tracker whose package is missing: one line naming the extra to install (transformers
    would fail later, after the model has loaded, with a longer message)."""
    from looptool.training.stage import TrainingError

    for tracker in config.train.trackers():
        if importlib.util.find_spec(EXTRA[tracker]) is None:
            raise TrainingError(f"[train] report_to = {tracker!r} needs the {tracker} package, which is not installed: "
                                f"pip install 'looptool[{tracker}]'")


def tracking_args(config: WorkspaceConfig, round: int, stage: str) -> dict[str, Any]:
    """The trainer arguments for `[train] report_to`."""
    return dict(
        report_to=config.train.trackers() or "none", run_name=f"round-{round}-{stage}", project=config.name,
        trackio_space_id=None, trackio_static_space_id=False,  # local only: no Space on the Hub, live or frozen
    )  # fmt: skip


@contextmanager
def tracking_env(workspace: Path, round: int, stage: str) -> Iterator[None]:
    """While a stage is built and trains: where its trackers write. transformers reads the
    TensorBoard directory from the environment when the trainer is made, Trackio its directory when
    it is first imported; both are put back afterwards (the stage may run inside a test)."""
    wanted = {"TENSORBOARD_LOGGING_DIR": str(tensorboard_dir(workspace, round, stage))}
    if "TRACKIO_DIR" not in os.environ:  # a user's own Trackio store wins
        wanted["TRACKIO_DIR"] = str(workspace / "logs" / "trackio")
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
