"""The arms of the comparison the method rests on: the loop, and what it is measured against.

The paper's claim is that the closed loop beats training on static seed data for the same number
of GRPO steps, and its ablations (Table 4) take one part of the loop away at a time. Each arm
other than the loop runs in a workspace of its own, `<workspace>/<arm>`, made once from the loop's
workspace (`make_arm_workspace`):

* static -- the paper's "w/o iterations" baseline: every round trains on the whole seed pool, with
  no probing, verification or expansion;
* no-jglv -- no label verification: every mismatch is a model error, labels are kept;
* random-hppl -- random correct samples instead of the high-perplexity (boundary) ones;
* no-edde -- no error-driven expansion;
* repeat-errors -- the error seeds are repeated instead of expanded.

Every arm spends exactly the loop's GRPO steps in each round (`loop_steps`): the loop records each
round's step count, and an arm may train round r only once the loop has trained it. Round 1 is the
same in every arm (the same seed subset, the same steps from the same warm start), so when the
loop has already trained it, the copy keeps it -- its row, logged steps, evaluations, probes and
adapter -- and the arm goes on from there; otherwise the arm trains round 1 itself.

How a copy is made: the database is copied, then put back to its seed state
(`Store.reset_to_seed`): original labels, no expanded samples, no verdicts or later rounds. The
SFT warm start's adapter is copied too, so every arm starts from the same model. The copy is built
under a temporary name and renamed into place, so it is whole or absent. `arm.json` in the copy
names its arm.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from looptool.config import CONFIG_FILE, DB_FILE
from looptool.schema import RoundMetrics
from looptool.store import Store
from looptool.training.rounds import adapter_dir

LOOP = "loop"
STATIC = "static"
# Arm name -> what it changes; the loop first, then the paper's baseline, then its ablations.
ARMS: dict[str, str] = {
    LOOP: "the closed loop: train, probe, verify, expand, assemble",
    STATIC: "w/o iterations: the same GRPO steps per round on the whole seed pool, no probing, verification or "
            "expansion",
    "no-jglv": "w/o label verification: every mismatch is a model error, labels are kept (no judge)",
    "random-hppl": "random correct samples instead of the high-perplexity ones",
    "no-edde": "w/o error-driven expansion: no new samples",
    "repeat-errors": "the error seeds repeated instead of expanded",
}
ARM_FILE = "arm.json"


class ArmError(Exception):
    """An unknown arm, or an arm that cannot go on yet; the message is one line."""


def check_arm(arm: str) -> str:
    if arm not in ARMS:
        raise ArmError(f"unknown arm {arm!r}; arms are: {', '.join(ARMS)}")
    return arm


# `looptool experiment`'s state file in its workspace: each finished step with its wall time (written by
# experiment.py, read by experiment_report.py).
STATE_FILE = "experiment.json"


def arm_workspace(workspace: Path, arm: str) -> Path:
    """Where an arm of a loop workspace lives (the loop's own workspace for the loop)."""
    check_arm(arm)
    return Path(workspace) if arm == LOOP else Path(workspace) / arm


def arm_of(workspace: Path) -> str:
    """The arm a workspace runs: what its `arm.json` says, else the loop."""
    path = Path(workspace) / ARM_FILE
    if not path.is_file():
        return LOOP
    return check_arm(json.loads(path.read_text(encoding="utf-8"))["arm"])


def loop_workspace_of(workspace: Path) -> Path:
    """The loop workspace an arm's workspace was made from (a loop workspace is its own)."""
    return Path(workspace).parent if arm_of(workspace) != LOOP else Path(workspace)


def existing_arms(workspace: Path) -> dict[str, Path]:
    """The arms of a loop workspace that have been made, loop first, in the order of ARMS."""
    found = {LOOP: Path(workspace)}
    for arm in ARMS:
        if arm != LOOP and (arm_workspace(workspace, arm) / CONFIG_FILE).is_file():
            found[arm] = arm_workspace(workspace, arm)
    return found


def loop_steps(workspace: Path, round: int) -> int | None:
    """The GRPO steps the loop of `workspace` (or of the loop an arm belongs to) spent in `round`;
    None when it has not trained that round."""
    loop_ws = loop_workspace_of(workspace)
    with Store.open(loop_ws / DB_FILE) as store:
        info = store.get_round(round)
    grpo = info.metrics.grpo if info is not None else None
    return int(grpo["steps"]) if grpo is not None and isinstance(grpo.get("steps"), int) else None


def matched_steps(workspace: Path, round: int) -> int:
    """The steps an arm must spend in `round`: exactly the loop's; ArmError while the loop has not
    trained that round."""
    steps = loop_steps(workspace, round)
    if steps is None:
        loop_ws = loop_workspace_of(workspace)
        raise ArmError(f"the loop has not trained round {round} yet, and every arm spends the loop's steps per round: "
                       f"run 'looptool loop -w {loop_ws} --rounds {round}' first")
    return steps


def _round_one_trained(store: Store, workspace: Path) -> bool:
    first = store.get_round(1)
    return bool(first and first.adapter_path and first.metrics.grpo is not None
                and (workspace / first.adapter_path).is_dir())


def make_arm_workspace(workspace: Path, arm: str) -> Path:
    """The arm's workspace, made from the loop's on first use (see the module doc)."""
    from looptool.checkpoint import open_checkpointer

    workspace = Path(workspace)
    if check_arm(arm) == LOOP:
        return workspace
    if arm_of(workspace) != LOOP:
        raise ArmError(f"{workspace} is itself the {arm_of(workspace)!r} arm of {workspace.parent}; name the loop's "
                       "workspace")
    target = arm_workspace(workspace, arm)
    if (target / DB_FILE).is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(workspace / CONFIG_FILE, tmp / CONFIG_FILE)
    (tmp / ARM_FILE).write_text(json.dumps({"arm": arm}) + "\n", encoding="utf-8")
    with Store.open(workspace / DB_FILE) as loop_store:
        keep_round_one = _round_one_trained(loop_store, workspace)
        loop_store.backup_to(tmp / DB_FILE)
    with Store.open(tmp / DB_FILE) as store:
        # Round 1's probes are kept: the same adapter answers the same data the same way, so the
        # ablations need not ask again (the static arm does not probe).
        store.reset_to_seed(keep_round=1 if keep_round_one else None, keep_probes=True)
        if keep_round_one:
            first = store.get_round(1)
            m = first.metrics
            kept = RoundMetrics(composition=m.composition, sft=m.sft, grpo=m.grpo, eval=m.eval,
                                stage_seconds=m.stage_seconds)
            store.upsert_round(first.model_copy(update={"metrics": kept}))
        store.log_event("info", "loop", f"{arm} arm made from {workspace.name}"
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


def static_workspace(workspace: Path) -> Path:
    """Where the static baseline of a loop workspace lives."""
    return arm_workspace(workspace, STATIC)


def make_static_workspace(workspace: Path) -> Path:
    """The static baseline's workspace (`make_arm_workspace(workspace, "static")`)."""
    return make_arm_workspace(workspace, STATIC)
