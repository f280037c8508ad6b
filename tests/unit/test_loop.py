"""The loop graph's control flow against the scripted server, with training replaced by a stand-in
that writes an adapter directory and records the stage (real training is tested in
tests/integration). Two rounds run end to end; a run that dies in the middle and is run again ends
with the same bookkeeping as an uninterrupted one; the review gate pauses the loop; a pause request
stops it after a node; one loop at a time runs on a workspace."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from looptool.config import DB_FILE, load_config
from looptool.loop.control import _only_loop, LoopError, pause_requested, request_pause, review_pending, running_loop_pid
from looptool.loop.graph import run_loop
from looptool.policy.prompt import load_renderer
from looptool.store import Store
from looptool.training.rounds import adapter_dir, record_stage
from tests.scripted_loop import SAMPLES, bookkeeping, loop_running_elsewhere, responder, scripted_workspace


@pytest.fixture(scope="module")
def tokenizer():
    return load_renderer("smollm2-135m-instruct").tokenizer


class StandInTraining:
    """Writes the round's adapter directory and records the GRPO stage, as a real run does."""

    def __init__(self, die_at_round: int | None = None) -> None:
        self.calls: list[int] = []
        self.steps: dict[int, int | None] = {}  # round -> the max_steps it was asked for
        self.die_at_round = die_at_round

    def __call__(self, workspace: Path, config, round: int, log, max_steps: int | None = None) -> None:
        self.calls.append(round)
        self.steps[round] = max_steps
        if round == self.die_at_round:
            self.die_at_round = None
            raise RuntimeError("killed")
        target = adapter_dir(workspace, round, "grpo")
        target.mkdir(parents=True, exist_ok=True)
        (target / "adapter_config.json").write_text("{}")
        with Store.open(workspace / DB_FILE) as store:
            # Like a real run: max_steps when given, else epochs over the data (here: one step per 4 samples).
            record_stage(store, workspace, round, "grpo",
                         {"steps": max_steps or -(-len(store.get_round(round).data_ids) // 4)})


@pytest.mark.slow
def test_two_rounds_end_to_end(workspace, fake_openai, tokenizer):
    ws = scripted_workspace(workspace, fake_openai, bfcl="simple", acebench="special_irrelevant,normal_atom_bool")
    fake_openai.responder = responder(tokenizer)
    training = StandInTraining()
    outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
    assert outcome.finished and outcome.round == 2 and training.calls == [1, 2]
    book = bookkeeping(ws)
    assert book["status"] == {1: "done", 2: "done", 3: "pending"}  # round 3's data is assembled, not trained
    train_ids = {s.id for s in SAMPLES if s.split == "train"}
    # Round 1 is 0.65 of the seed pool; round 2 has its size, with fresh seed no round has used.
    assert set(book["data"][1]) < train_ids and len(book["data"][1]) == round(0.65 * len(train_ids))
    with Store.open(ws / DB_FILE) as store:
        composition = store.get_round(2).metrics.composition
    assert composition["fresh_seed"] == round(0.308 * len(book["data"][1])) > 0
    assert len(book["data"][2]) <= len(book["data"][1])
    for r in (1, 2):
        assert sum(book["probes"][r].values()) == len(set(book["data"][r]))
        assert sum(book["verdicts"][r].values()) == book["probes"][r]["failed"]
    exact = {s.id for s in SAMPLES if s.exact}
    with Store.open(ws / DB_FILE) as store:
        verdicts = [v for r in (1, 2) for v in store.verdicts(r)]
    # The judge ruled on model-written labels only; a failed exact label is the policy's error by rule.
    assert {v.basis for v in verdicts if v.sample_id in exact} == {"rule"}
    assert all(v.verdict == "PRED_WRONG" for v in verdicts if v.sample_id in exact)
    assert {v.basis for v in verdicts if v.sample_id not in exact} == {"judge"}
    assert any(v.verdict == "LABEL_WRONG" for v in verdicts)  # ... and corrected some of those
    assert book["by_origin"]["expanded"] > 0 and book["ids_unique"]
    with Store.open(ws / DB_FILE) as store:
        r1, r2 = store.get_round(1), store.get_round(2)
    assert r2.metrics.composition["expanded"] == r1.metrics.expansion["kept"]
    assert set(r1.metrics.eval.model_dump()) >= {"heldout", "bfcl"} and r1.metrics.eval.bfcl["simple"] == 0.0
    # ACEBench's first 2 entries of each category, every round ("Sorry, I cannot." names no limitation).
    ace = r2.metrics.eval.acebench
    assert ace["special_irrelevant"] == ace["normal_atom_bool"] == ace["all"] == 0.0 and ace["special"] == 0.0
    with Store.open(ws / DB_FILE) as store:
        assert len(store.eval_results(r2.metrics.eval.acebench_run)) == 4
    # Run again: the loop is finished, nothing is asked or trained.
    asked = len(fake_openai.requests)
    assert run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training).finished
    assert len(fake_openai.requests) == asked and training.calls == [1, 2]


@pytest.mark.slow
def test_a_run_killed_mid_way_ends_like_an_uninterrupted_one(tmp_path, runner, fake_openai, tokenizer):
    from looptool.cli import app

    books = []
    for name, die in (("straight", None), ("killed", 2)):
        ws = tmp_path / name
        assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
        scripted_workspace(ws, fake_openai)
        fake_openai.responder = responder(tokenizer)
        training = StandInTraining(die_at_round=die)
        if die:
            with pytest.raises(RuntimeError, match="killed"):
                run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
            # and once more, with the server failing in the middle of round 2's probing
            fake_openai.responder = responder(tokenizer, fail={"at": 7})
            with pytest.raises(Exception):
                run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
            fake_openai.responder = responder(tokenizer)
        outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
        assert outcome.finished
        books.append(bookkeeping(ws))
        assert training.calls.count(1) == 1  # round 1 was trained once
    for key in ("status", "data", "probes", "verdicts", "labels", "expansions", "by_origin", "ids_unique"):
        assert books[0][key] == books[1][key], (key, books[0][key], books[1][key])


@pytest.mark.slow
def test_a_run_killed_between_a_nodes_write_and_the_next_checkpoint_goes_on(workspace, fake_openai, tokenizer):
    """Killed after `advance` wrote round 2 but before the checkpoint that follows it: LangGraph
    then shows no next node (every task of the last checkpoint has its write), which is not the
    end of the graph; the next run goes on into round 2 instead of reporting the loop finished."""
    import sqlite3

    ws = scripted_workspace(workspace, fake_openai)
    fake_openai.responder = responder(tokenizer)
    training = StandInTraining(die_at_round=2)
    with pytest.raises(RuntimeError, match="killed"):
        run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
    with sqlite3.connect(ws / DB_FILE) as db:  # undo what was written after `advance`'s write
        (newest,) = db.execute("SELECT checkpoint_id FROM checkpoints WHERE thread_id = 'loop' AND checkpoint_ns = '' "
                               "ORDER BY checkpoint_id DESC LIMIT 1").fetchone()
        db.execute("DELETE FROM writes WHERE thread_id = 'loop' AND checkpoint_id = ?", [newest])
        db.execute("DELETE FROM checkpoints WHERE thread_id = 'loop' AND checkpoint_id = ?", [newest])
    outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
    assert outcome.finished and outcome.round == 2 and training.calls == [1, 2, 2]
    assert bookkeeping(ws)["status"] == {1: "done", 2: "done", 3: "pending"}


class PausingTraining(StandInTraining):
    """Asks for a pause while it trains `pause_at_round`, as `looptool pause` would from outside."""

    def __init__(self, pause_at_round: int) -> None:
        super().__init__()
        self.pause_at_round = pause_at_round

    def __call__(self, workspace: Path, config, round: int, log, max_steps: int | None = None) -> None:
        if round == self.pause_at_round:
            request_pause(workspace)
        super().__call__(workspace, config, round, log, max_steps)


@pytest.mark.slow
def test_a_pause_stops_after_the_node_and_the_next_run_goes_on(tmp_path, runner, fake_openai, tokenizer):
    from looptool.cli import app

    books = []
    for name, pause in (("straight", False), ("paused", True)):
        ws = tmp_path / name
        assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
        scripted_workspace(ws, fake_openai)
        fake_openai.responder = responder(tokenizer)
        training = PausingTraining(pause_at_round=1) if pause else StandInTraining()
        if pause:
            outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
            assert outcome.stopped and outcome.stopped_after == "train"
            assert not outcome.finished and not outcome.paused and not pause_requested(ws)
            with Store.open(ws / DB_FILE) as store:
                info = store.get_round(1)
                assert info.stage == "train" and store.probes(1) == []  # probe did not start
                assert info.status == "paused" and "stage_started" not in info.metrics.model_dump()  # the row says so
                assert "train" in info.metrics.stage_seconds  # the finished stage's time is counted
                assert "paused after train as asked" in [e["message"] for e in store.events()]
        else:
            request_pause(ws)  # left over from before the run: void
        outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
        assert outcome.finished and not outcome.stopped
        assert training.calls == [1, 2]  # the paused run went on with probing, not training round 1 again
        books.append(bookkeeping(ws))
    for key in ("status", "data", "probes", "verdicts", "labels", "expansions", "by_origin", "ids_unique"):
        assert books[0][key] == books[1][key], (key, books[0][key], books[1][key])


@pytest.mark.slow
def test_one_loop_at_a_time_runs_on_a_workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert running_loop_pid(ws) is None  # no loop has ever run
    with _only_loop(ws):
        assert running_loop_pid(ws) == os.getpid()
        with pytest.raises(LoopError, match=rf"another loop runs on .* \(pid {os.getpid()}\)"):
            with _only_loop(ws, wait_s=0.1):
                pass
    assert running_loop_pid(ws) is None  # released as the run ends

    # A loop in another process holds it until that process dies, however it dies.
    with loop_running_elsewhere(ws) as holder:
        assert running_loop_pid(ws) == holder.pid
        with pytest.raises(LoopError, match=f"pid {holder.pid}"):
            run_loop(ws, None, log=lambda *_: None)  # refused before it reads anything
    deadline = time.monotonic() + 5
    while running_loop_pid(ws) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_loop_pid(ws) is None


@pytest.mark.slow
def test_review_pauses_the_loop_until_accepted(workspace, fake_openai, tokenizer, runner):
    from looptool.cli import app

    ws = scripted_workspace(workspace, fake_openai, review=True)
    fake_openai.responder = responder(tokenizer)
    training = StandInTraining()
    outcome = run_loop(ws, load_config(ws), rounds=1, log=lambda *_: None, train=training)
    assert outcome.paused and not outcome.finished
    assert review_pending(ws) == 1  # what the TUI reads agrees
    with Store.open(ws / DB_FILE) as store:
        assert store.get_round(1).stage == "verify" and store.expansion_counts(1) == {}
        verdicts = store.verdicts(1)
    assert verdicts
    assert run_loop(ws, load_config(ws), rounds=1, log=lambda *_: None, train=training).paused  # still waiting
    listing = runner.invoke(app, ["review", "-w", str(ws), "--override", f"{verdicts[0].sample_id}=BOTH_WRONG"])
    assert listing.exit_code == 0 and "BOTH_WRONG (override)" in listing.output
    outcome = run_loop(ws, load_config(ws), rounds=1, resume_review=True, log=lambda *_: None, train=training)
    assert outcome.finished and review_pending(ws) is None
    with Store.open(ws / DB_FILE) as store:
        assert store.get_sample(verdicts[0].sample_id).active is False
        assert store.get_round(1).status == "done"


@pytest.mark.slow
def test_more_rounds_continue_a_finished_loop(workspace, fake_openai, tokenizer):
    ws = scripted_workspace(workspace, fake_openai)
    fake_openai.responder = responder(tokenizer)
    training = StandInTraining()
    assert run_loop(ws, load_config(ws), rounds=1, log=lambda *_: None, train=training).finished
    with Store.open(ws / DB_FILE) as store:
        planned = store.get_round(2).data_ids  # assembled at the end of round 1
    outcome = run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=training)
    assert outcome.finished and outcome.round == 2 and training.calls == [1, 2]
    with Store.open(ws / DB_FILE) as store:
        assert store.get_round(1).status == "done" and store.get_round(2).status == "done"
        assert store.get_round(2).data_ids == planned
        # `eval_bfcl_categories = ""` (the scripted workspace's) means no BFCL evaluation, not all 13.
        assert load_config(ws).loop.eval_bfcl_categories == ""
        assert set(store.get_round(1).metrics.eval.model_dump()) == {"heldout", "heldout_run"}
        assert not store.eval_runs("bfcl")


@pytest.mark.slow
def test_static_baseline_shares_round_one_and_trains_on_the_whole_seed_pool_at_the_loops_steps(
        workspace, fake_openai, tokenizer):
    from looptool.loop.arms import make_static_workspace

    ws = scripted_workspace(workspace, fake_openai)
    fake_openai.responder = responder(tokenizer)
    loop_training = StandInTraining()
    assert run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=loop_training).finished
    loop_before = bookkeeping(ws)
    assert loop_before["by_origin"]["expanded"] > 0

    static = make_static_workspace(ws)
    assert static == ws / "static" and make_static_workspace(ws) == static  # made once
    training = StandInTraining()
    outcome = run_loop(static, load_config(static), rounds=2, log=lambda *_: None, train=training)
    assert outcome.finished and training.calls == [2]  # round 1 is the loop's
    book = bookkeeping(static)
    seed_pool = sorted(s.id for s in SAMPLES if s.split == "train")
    assert book["by_origin"] == Counter(s.origin for s in SAMPLES)  # seed samples only
    assert book["labels"] == sorted((s.id, s.label_version) for s in SAMPLES)  # every label as seeded
    assert all(not v for v in book["verdicts"].values())
    assert book["data"][1] == loop_before["data"][1]  # round 1 is shared
    assert book["data"][2] == seed_pool != book["data"][1]  # then the whole seed pool, not round 1's subset
    assert book["status"] == {1: "done", 2: "done", 3: "pending"}
    assert adapter_dir(static, 1, "grpo").is_dir()
    with Store.open(static / DB_FILE) as store, Store.open(ws / DB_FILE) as loop_store:
        # Steps are matched: the static arm spent exactly the loop's steps in round 2.
        loop_steps = loop_store.get_round(2).metrics.grpo["steps"]
        assert training.steps == {2: loop_steps} and store.get_round(2).metrics.grpo["steps"] == loop_steps
        assert len(seed_pool) // 4 != loop_steps  # (which is not what its own data would have given)
        assert store.get_round(1).metrics.eval == loop_store.get_round(1).metrics.eval
        assert all(store.get_sample(s.id).label == s.label for s in SAMPLES)
        assert set(store.get_round(2).metrics.stage_seconds) == {"train", "assemble", "evaluate"}
        assert store.get_round(3).metrics.composition == {"seed": len(seed_pool)}
    assert bookkeeping(ws) == loop_before  # the loop's workspace is untouched


@pytest.mark.slow
def test_an_arm_waits_for_the_loop_to_train_a_round_first(workspace, fake_openai, tokenizer):
    from looptool.loop.arms import make_static_workspace

    ws = scripted_workspace(workspace, fake_openai)
    fake_openai.responder = responder(tokenizer)
    static = make_static_workspace(ws)
    training = StandInTraining()
    with pytest.raises(LoopError, match="the loop has not trained round 1 yet"):
        run_loop(static, load_config(static), rounds=2, log=lambda *_: None, train=training)
    assert training.calls == []
    loop_training = StandInTraining()
    assert run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=loop_training).finished
    assert run_loop(static, load_config(static), rounds=2, log=lambda *_: None, train=training).finished
    assert training.calls == [1, 2]  # made before the loop trained round 1: it trains its own
    with Store.open(static / DB_FILE) as store, Store.open(ws / DB_FILE) as loop_store:
        assert [store.get_round(r).metrics.grpo["steps"] for r in (1, 2)] == \
            [loop_store.get_round(r).metrics.grpo["steps"] for r in (1, 2)]
        assert store.get_round(1).data_ids == loop_store.get_round(1).data_ids  # the same seeded subset
        assert set(store.get_round(1).metrics.stage_seconds) == {"prepare", "train", "assemble", "evaluate"}


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["no-jglv", "random-hppl", "no-edde", "repeat-errors"])
def test_an_ablation_arm_runs_in_its_own_workspace_at_the_loops_steps(arm, workspace, fake_openai, tokenizer):
    from looptool.loop.arms import make_arm_workspace

    ws = scripted_workspace(workspace, fake_openai)
    fake_openai.responder = responder(tokenizer)
    assert run_loop(ws, load_config(ws), rounds=2, log=lambda *_: None, train=StandInTraining()).finished
    loop_book = bookkeeping(ws)
    arm_ws = make_arm_workspace(ws, arm)
    assert arm_ws == ws / arm
    with pytest.raises(LoopError, match="runs the 'no-jglv' arm|runs the '.*' arm"):
        run_loop(arm_ws, load_config(arm_ws), rounds=2, arm="loop", log=lambda *_: None, train=StandInTraining())
    asked = len(fake_openai.requests)
    training = StandInTraining()
    assert run_loop(arm_ws, load_config(arm_ws), rounds=2, log=lambda *_: None, train=training).finished
    assert training.calls == [2]
    book = bookkeeping(arm_ws)
    requests = fake_openai.requests[asked:]
    with Store.open(arm_ws / DB_FILE) as store, Store.open(ws / DB_FILE) as loop_store:
        assert store.get_round(2).metrics.grpo["steps"] == loop_store.get_round(2).metrics.grpo["steps"]
        assert store.probes(1) == loop_store.probes(1)  # round 1's probes came with the copy
        composition = store.get_round(2).metrics.composition
        verdicts = [v for r in (1, 2) for v in store.verdicts(r)]
    assert book["data"][1] == loop_book["data"][1]
    if arm == "no-jglv":
        assert verdicts and all(v.verdict == "PRED_WRONG" and v.basis == "rule" for v in verdicts)
        assert not any("verdict" in str(body.get("response_format", "")) for _, body in requests)  # no judge
        assert all(version == 1 for _, version in book["labels"])  # labels kept
    if arm in ("no-edde", "repeat-errors"):
        assert book["by_origin"]["expanded"] == 0 and "expanded" not in composition
    if arm == "repeat-errors":
        seeds = composition["corrected"] + composition["error"]
        assert composition["repeated"] == 2 * seeds  # expansions_per_error = 2 in the scripted workspace
    if arm == "random-hppl":
        assert "boundary" not in composition and "random_correct" in composition
