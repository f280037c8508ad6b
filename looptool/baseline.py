"""The static baseline's workspace: the comparison the paper's claim rests on.

`looptool loop --static` spends the same GRPO steps per round as the loop, but always on round 1's
seed data, with no probing, verification or expansion. It runs in a workspace of its own,
`<workspace>/static`, made once from the loop's workspace:

* the database is copied, then put back to its seed state (`Store.reset_to_seed`): original labels,
  no expanded samples, no probes, verdicts, expansions or later rounds;
* round 1 is the same in both arms (the same seed subsample, the same GRPO steps from the same
  warm start), so when the loop has already trained it, the copy keeps it -- its row, logged steps,
  evaluations and adapter -- and the baseline starts at round 2; otherwise it trains round 1 itself;
* the SFT warm start's adapter is copied too, so both arms start from the same model.

The copy is built under a temporary name and renamed into place, so it is whole or absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from looptool.config import CONFIG_FILE, DB_FILE
from looptool.store import Store
from looptool.training.rounds import adapter_dir

STATIC_DIR = "static"


def static_workspace(workspace: Path) -> Path:
    """Where the static baseline of a loop workspace lives."""
    return workspace / STATIC_DIR


def _round_one_trained(store: Store, workspace: Path) -> bool:
    first = store.get_round(1)
    return bool(first and first.adapter_path and "grpo" in first.metrics and (workspace / first.adapter_path).is_dir())


def make_static_workspace(workspace: Path) -> Path:
    """The static baseline's workspace, made from the loop's on first use (see the module doc)."""
    from looptool.graphs.checkpoint import open_checkpointer

    target = static_workspace(workspace)
    if (target / DB_FILE).is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(workspace / CONFIG_FILE, tmp / CONFIG_FILE)
    with Store.open(workspace / DB_FILE) as loop_store:
        keep_round_one = _round_one_trained(loop_store, workspace)
        loop_store.backup_to(tmp / DB_FILE)
    with Store.open(tmp / DB_FILE) as store:
        store.reset_to_seed(keep_round=1 if keep_round_one else None)
        if keep_round_one:
            first = store.get_round(1)
            kept = {k: v for k, v in first.metrics.items() if k in ("composition", "sft", "grpo", "eval", "stage_seconds")}
            store.upsert_round(first.model_copy(update={"metrics": kept}))
        store.log_event("info", "loop", f"static baseline made from {workspace.name}"
                        + (" (round 1 shared with the loop)" if keep_round_one else ""))
    saver = open_checkpointer(tmp / DB_FILE)
    try:
        for thread in ("loop", "loop-static"):
            saver.delete_thread(thread)
    finally:
        saver.conn.close()
    stages = ["sft", "grpo"] if keep_round_one else ["sft"]
    for stage in stages:
        source = adapter_dir(workspace, 1, stage)
        if source.is_dir():
            shutil.copytree(source, adapter_dir(tmp, 1, stage))
    tmp.rename(target)
    return target
