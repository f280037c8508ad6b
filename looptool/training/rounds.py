"""Where a round's adapters live, which adapter a stage starts from, and how a finished stage is
recorded.

    <workspace>/adapters/round-R-sft            the SFT warm start of round R (optional)
    <workspace>/adapters/round-R                round R's GRPO adapter (Round.adapter_path)
    <workspace>/adapters/round-R-<stage>.checkpoints/checkpoint-N    while a stage runs

A stage writes its adapter under a temporary name and renames it into place, so an adapter
directory is either complete or absent; a killed run resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from looptool.schema import Round
from looptool.store import Store

ADAPTERS = "adapters"


def adapter_dir(workspace: Path, round: int, stage: str) -> Path:
    name = f"round-{round}" if stage == "grpo" else f"round-{round}-{stage}"
    return workspace / ADAPTERS / name


def checkpoint_dir(workspace: Path, round: int, stage: str) -> Path:
    return workspace / ADAPTERS / f"round-{round}-{stage}.checkpoints"


def has_checkpoint(path: Path) -> bool:
    return last_checkpoint(path) is not None


def last_checkpoint(path: Path) -> Path | None:
    """The newest whole checkpoint in `path`: transformers writes `trainer_state.json` after the
    weights, so a checkpoint killed while it was being written lacks it and is passed over."""
    found = [p for p in path.glob("checkpoint-*") if p.name[len("checkpoint-"):].isdigit()
             and (p / "trainer_state.json").is_file() and (p / "adapter_model.safetensors").is_file()] if path.is_dir() else []
    return max(found, key=lambda p: int(p.name[len("checkpoint-"):]), default=None)


def start_adapter(workspace: Path, store: Store, round: int, stage: str) -> Path | None:
    """GRPO of round R continues round R's SFT warm start if there is one, else round R-1's
    adapter, else starts a fresh adapter; SFT always starts fresh."""
    if stage != "grpo":
        return None
    sft = adapter_dir(workspace, round, "sft")
    if sft.is_dir():
        return sft
    previous = store.get_round(round - 1) if round > 1 else None
    if previous is not None and previous.adapter_path:
        return workspace / previous.adapter_path
    return None


def save_adapter(model, target: Path) -> None:
    """Write the adapter to a temporary directory, then move it into place whole."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # Only the policy's own adapter: TRL adds a frozen "ref" copy beside it when beta > 0.
    adapters = getattr(model, "peft_config", {})
    model.save_pretrained(str(tmp), **({"selected_adapters": ["default"]} if "ref" in adapters else {}))
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def record_stage(store: Store, workspace: Path, round: int, stage: str, summary: dict) -> None:
    """Note a finished stage on its round; GRPO's adapter becomes the round's adapter."""
    info = store.get_round(round) or Round(n=round)
    update: dict[str, Any] = {"metrics": info.metrics.updated(**{stage: summary})}
    if stage == "grpo":
        update["adapter_path"] = str(adapter_dir(workspace, round, stage).relative_to(workspace))
    store.upsert_round(info.model_copy(update=update))


def clear_checkpoints(path: Path) -> None:
    """A finished stage's checkpoints are no longer needed (its adapter is saved)."""
    shutil.rmtree(path, ignore_errors=True)
