"""The loop graph's nodes and routing, each called alone with a state and a LoopContext given as
LangGraph's runtime, the way the graph calls them (the whole graph runs in test_loop.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph.graph import END
from langgraph.runtime import Runtime

from looptool.config import DB_FILE, load_config
from looptool.loop.control import LoopError
from looptool.loop.graph import advance, after_evaluate, pausable, prepare, stage, train
from looptool.loop.state import LoopContext
from looptool.store import Store
from looptool.training.rounds import adapter_dir, record_stage
from tests.scripted_loop import SAMPLES


@pytest.fixture
def store(workspace: Path):
    with Store.open(workspace / DB_FILE) as store:
        yield store


def runtime(workspace: Path, store: Store, **fields) -> Runtime[LoopContext]:
    return Runtime(context=LoopContext(workspace, load_config(workspace), store, log=lambda *_: None, **fields))


def test_advance_goes_to_the_next_round_and_evaluate_routes_there_until_the_last_round():
    assert advance({"round": 2, "rounds": 3}) == {"round": 3}
    assert after_evaluate({"round": 2, "rounds": 3}) == "advance"
    assert after_evaluate({"round": 3, "rounds": 3}) == END


def test_prepare_stops_a_workspace_without_seed_samples(workspace, store):
    with pytest.raises(LoopError, match="no seed training samples"):
        prepare({"round": 1, "rounds": 2}, runtime(workspace, store))


def test_prepare_assembles_round_one_once_and_marks_its_stage(workspace, store):
    store.upsert_samples(SAMPLES)
    assert prepare({"round": 1, "rounds": 2}, runtime(workspace, store)) == {}
    first = store.get_round(1)
    train_ids = {s.id for s in SAMPLES if s.split == "train"}
    assert first.stage == "prepare" and first.status == "running"
    assert first.data_ids and set(first.data_ids) <= train_ids
    prepare({"round": 1, "rounds": 2}, runtime(workspace, store))  # run again: the same data
    assert store.get_round(1).data_ids == first.data_ids


def test_train_trains_a_round_once_at_the_loops_steps(workspace, store):
    asked: list[tuple[int, int | None]] = []

    def stand_in(ws, config, round, log, max_steps):
        asked.append((round, max_steps))
        target = adapter_dir(ws, round, "grpo")
        target.mkdir(parents=True, exist_ok=True)
        record_stage(store, ws, round, "grpo", {"steps": max_steps or 1})

    rt = runtime(workspace, store, train=stand_in)
    train({"round": 1, "rounds": 2}, rt)
    assert asked == [(1, rt.context.config.loop.grpo_steps)]
    assert store.get_round(1).stage == "train"
    train({"round": 1, "rounds": 2}, rt)  # the round has its adapter: it is not trained again
    assert asked == [(1, rt.context.config.loop.grpo_steps)]


def test_stage_counts_the_time_of_the_stage_that_ends(store):
    stage(store, 1, "train")
    assert store.get_round(1).metrics.stage_started is not None
    stage(store, 1, "probe")
    info = store.get_round(1)
    assert info.stage == "probe" and set(info.metrics.stage_seconds) == {"train"}
    stage(store, 1, "done", "done")
    info = store.get_round(1)
    assert info.status == "done" and info.finished_at and info.metrics.stage_started is None


def test_pausable_takes_the_pause_point_as_the_node_ends(workspace, store):
    seen: list[str] = []
    rt = runtime(workspace, store, pause_point=seen.append)

    def node(state, runtime):
        seen.append("ran")
        return {"round": state["round"]}

    async def async_node(state, runtime):
        seen.append("ran async")
        return {}

    assert pausable("probe", node)({"round": 4}, rt) == {"round": 4}
    assert asyncio.run(pausable("expand", async_node)({"round": 4}, rt)) == {}
    assert seen == ["ran", "probe", "ran async", "expand"]
