"""`looptool loop` killed with SIGKILL at random stages, then run again, ends with the bookkeeping
of an uninterrupted run: real processes, real SQLite, real TRL training (a tiny random model, so a
stage takes seconds), the policy, judge and expander answered by the scripted server so that both
runs are asked the same questions and get the same answers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from looptool.config import DB_FILE, load_config, save_config
from looptool.policy.prompt import load_renderer
from looptool.schema import ROUND_STAGES
from looptool.store import Store
from tests.scripted_loop import bookkeeping, responder, scripted_workspace
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

ORDER = (*ROUND_STAGES, "done")
TIMEOUT_S = 600


def _configure(ws: Path, fake_openai, tiny: Path) -> Path:
    scripted_workspace(ws, fake_openai)
    config = load_config(ws)
    config.train = config.train.model_copy(update=dict(
        model=str(tiny), warm_start="on", sft_max_steps=2, sft_batch_size=2, num_generations=2, prompts_per_step=2,
        max_completion_tokens=8, save_steps=1))
    config.loop = config.loop.model_copy(update=dict(grpo_steps=2))
    save_config(ws, config)
    return ws


def _progress(ws: Path) -> tuple[int, int]:
    """(round, stage index) the loop has reached, from the rows it writes as it goes."""
    with Store.open(ws / DB_FILE) as store:
        started = [r for r in store.rounds() if r.stage]
    if not started:
        return (0, -1)
    last = max(started, key=lambda r: r.n)
    return (last.n, ORDER.index(last.stage))


def _run(ws: Path, log: Path, kill_at: tuple[int, int] | None = None, delay: float = 0.0, arm: str = "loop") -> bool:
    """One `looptool loop` process (of `arm`); SIGKILL it once it reaches `kill_at` (+ delay). Killed or not."""
    watched = ws if arm == "loop" else ws / arm
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "looptool.cli", "loop", "-w", str(ws), "--rounds", "2",
                                 "--arm", arm], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if kill_at is not None and (watched / DB_FILE).is_file() and _progress(watched) >= kill_at:
                time.sleep(delay)
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)  # the trainer child dies with it (PDEATHSIG)
                    proc.wait()
                    return True
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
    assert proc.wait() == 0, log.read_text()[-3000:]
    return False


def test_loop_killed_at_random_stages_resumes_to_the_same_bookkeeping(tmp_path, runner, fake_openai):
    from looptool.cli import app

    tiny = build_tiny_model(tmp_path / "tiny")
    fake_openai.responder = responder(load_renderer("smollm2-135m-instruct").tokenizer)
    workspaces = {}
    for name in ("straight", "killed"):
        ws = tmp_path / name
        assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
        workspaces[name] = _configure(ws, fake_openai, tiny)

    assert not _run(workspaces["straight"], tmp_path / "straight.log")

    rng = random.Random(int(os.environ.get("LOOPTOOL_KILL_SEED", "7")))
    points = [(r, ORDER.index(s)) for r in (1, 2) for s in ORDER[1:-1]]  # train .. evaluate
    targets = sorted(rng.sample(points, 4))
    kills = []
    for target in targets:
        if _run(workspaces["killed"], tmp_path / "killed.log", target, delay=rng.uniform(0, 1.5)):
            kills.append(target)
    assert len(kills) >= 3, (targets, kills)  # the loop really died mid-way, several times
    assert not _run(workspaces["killed"], tmp_path / "killed.log")  # and then ran to the end

    straight, killed = bookkeeping(workspaces["straight"]), bookkeeping(workspaces["killed"])
    for key in ("status", "data", "probes", "verdicts", "labels", "expansions", "by_origin", "ids_unique"):
        assert straight[key] == killed[key], (key, kills, straight[key], killed[key])
    assert straight["ids_unique"] and straight["by_origin"]["expanded"] > 0
    with Store.open(workspaces["killed"] / DB_FILE) as store:
        for r in (1, 2):
            probes = store.probes(r)
            assert len(probes) == len({p.sample_id for p in probes}) == len(store.get_round(r).data_ids)
            assert [s["step"] for s in store.train_steps(r, "grpo")] == [1, 2]

    # The static arm, killed in round 2's training and evaluation, ends like an uninterrupted one,
    # at the loop's steps.
    assert not _run(workspaces["straight"], tmp_path / "straight.log", arm="static")
    kills = [t for t in ((2, ORDER.index("train")), (2, ORDER.index("evaluate")))
             if _run(workspaces["killed"], tmp_path / "killed.log", t, delay=rng.uniform(0, 1.0), arm="static")]
    assert kills, "the static arm was never killed"
    assert not _run(workspaces["killed"], tmp_path / "killed.log", arm="static")
    straight, killed = bookkeeping(workspaces["straight"] / "static"), bookkeeping(workspaces["killed"] / "static")
    for key in ("status", "data", "labels", "by_origin", "ids_unique"):
        assert straight[key] == killed[key], (key, kills, straight[key], killed[key])
    with Store.open(workspaces["killed"] / "static" / DB_FILE) as store:
        assert [s["step"] for s in store.train_steps(2, "grpo")] == [1, 2]
        assert store.get_round(2).metrics.grpo["steps"] == 2
