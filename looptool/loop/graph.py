"""The closed loop as one checkpointed LangGraph:

    prepare -> train -> probe -> verify (judge -> review -> apply) -> expand -> assemble -> evaluate
               ^                                                                            |
               +------------------------------ next round ---------------------------------+

* prepare: round 1's data, a seeded subsample of the seed training samples (`[loop]
  first_round_share`, or `round_size`; see loop/assemble.py).
* train: GRPO on the round's data in a child process (round 1 of the embedded model starts with
  the SFT warm start); local vLLM servers on the GPU are stopped first, so training has it. The
  loop spends `[loop] grpo_steps` (default: `[train] epochs` over the round's data) and records the
  count; every other arm spends exactly the loop's count of the same round (arms.py).
* probe, verify, expand, assemble: see loop/probe.py, loop/verify.py, loop/expand.py,
  loop/assemble.py. The expand node starts the expander's and the judge's servers only when a
  seed of the round goes to the expander model (`[loop] expander`).
* evaluate: the round's adapter on the held-out samples, on a BFCL-v3 subset
  (`[loop] eval_bfcl_categories`, `eval_bfcl_limit`) and on an ACEBench subset
  (`[loop] eval_acebench_categories`, `eval_acebench_limit`); scores go to the round's metrics.

The arm (arms.py) changes the graph where the paper's baseline and ablations differ from the
loop: `static` trains on the whole seed pool every round with no probing, verification or
expansion; `no-jglv` verifies without the judge (every mismatch is a model error); `no-edde` and
`repeat-errors` write no expansions; `random-hppl` and `repeat-errors` assemble differently.
Every arm other than the loop runs in a workspace of its own (`arms.make_arm_workspace`).

The state carries the round and counters only. Every node is safe to run again -- a trained round
is not trained twice, probes, verdicts and expansions already stored are not asked for again,
assembly is deterministic, evaluations are stored runs -- so a run killed at any point continues,
from the node that was running, when `run_loop` is called again. The round's stage and status are
written to the database as they change (the TUI reads them).

A run can be asked to stop after the node it is running (`request_pause`: `looptool pause` or the
TUI). The request is a file in the workspace, so any process can make it; the run looks for it
after each node, stops at that node boundary with the node's checkpoint saved, marks the round
"paused" (its stage the one that finished; the stage's clock stops), and returns; running the
loop again continues from the next node, which marks the round running again.

One loop at a time runs on a workspace (control.py: the pause file, the lock, the review gate);
evaluate.py scores a round.

The graph's state (`LoopState`) and its run context (`LoopContext`: workspace, settings, store,
arm, training, pause point) are in state.py. Every node and routing function here is a top-level
function of the state and, where it needs the context, of LangGraph's runtime (`runtime.context`
is the LoopContext each run is given), so each can be called alone; the helpers they share
(`stage`, `record_metrics`) take the store. `pausable` wraps a node so that it ends at the
context's pause point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from langgraph.errors import GraphDrained
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import RunControl, Runtime
from langgraph.types import Command

from looptool.config import DB_FILE, WorkspaceConfig
from looptool.loop.arms import LOOP, STATIC, ArmError, arm_of, check_arm, matched_steps
from looptool.loop.assemble import Assembly, assemble_round, first_round_ids, record_assembly, static_round
from looptool.loop.control import LoopError, _only_loop, _take_pause_request
from looptool.loop.evaluate import evaluate_round
from looptool.loop.expand import ExpandContext, expand_round, needs_model
from looptool.loop.probe import probe_round
from looptool.loop.state import LoopContext, LoopState
from looptool.loop.verify import build_verify_graph
from looptool.schema import ProbeCounts, Round, RoundMetrics, RoundStatus, Stage
from looptool.serving.client import resolve_endpoint
from looptool.store import Store, utc_now

# -- what the nodes record -----------------------------------------------------------------------


def stage(store: Store, round: int, name: Stage | Literal["done"], status: RoundStatus = "running") -> None:
    """The round enters the stage `name` (its clock: `_stage_clock`), as the TUI shows it."""
    info = store.get_round(round) or Round(n=round)
    now = utc_now()
    update: dict[str, Any] = {"stage": name, "status": status, "metrics": _stage_clock(info, name, now)}
    if info.started_at is None:
        update["started_at"] = now
    if status == "done":
        update["finished_at"] = now
    store.upsert_round(info.model_copy(update=update))
    store.log_event("info", "loop", f"round {round}: {name}" + ("" if status == "running" else f" ({status})"))


def record_metrics(store: Store, round: int, **figures: Any) -> None:
    """Set these RoundMetrics fields of the round (validated as they are set)."""
    info = store.get_round(round) or Round(n=round)
    store.upsert_round(info.model_copy(update={"metrics": info.metrics.updated(**figures)}))


# -- the nodes -----------------------------------------------------------------------------------


def prepare(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    store, config = ctx.store, ctx.config
    first = store.get_round(1)
    if first is None or not first.data_ids:
        # Round 1 is the same in every arm, the static one included: the same seeded subset.
        data = Assembly(1, {"fresh_seed": first_round_ids(store, config.loop, seed=config.train.seed)})
        if not data.ids:
            raise LoopError(f"{ctx.workspace} has no seed training samples; run 'looptool seed' first")
        record_assembly(store, data)
    if state["round"] == 1:
        stage(store, 1, "prepare")
    return {}


def train(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    store, ws, r = ctx.store, ctx.workspace, state["round"]
    stage(store, r, "train")
    info = store.get_round(r)
    if info is None or not info.adapter_path or info.metrics.grpo is None or not (ws / info.adapter_path).is_dir():
        try:
            steps = ctx.config.loop.grpo_steps if ctx.arm == LOOP else matched_steps(ws, r)
        except ArmError as exc:
            raise LoopError(str(exc)) from None
        ctx.train(ws, ctx.config, r, ctx.log, steps)
    return {}


def probe(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    r = state["round"]
    stage(ctx.store, r, "probe")
    summary = probe_round(ctx.workspace, ctx.config, r, log=ctx.log)
    record_metrics(ctx.store, r, probe=ProbeCounts(**summary.counts, boundary_cut=summary.cut))
    return {}


def verify_stage(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    """The round enters verification (the verify subgraph's own nodes know nothing of rounds' stages)."""
    stage(runtime.context.store, state["round"], "verify")
    return {}


async def expand(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    store, config, ws, r = ctx.store, ctx.config, ctx.workspace, state["round"]
    stage(store, r, "expand")
    if ctx.arm in ("no-edde", "repeat-errors"):  # these arms write no new samples
        return {}
    # The servers start only for seeds the model expands (none when the templated expander takes them all).
    model = needs_model(store, config, r)
    expander = resolve_endpoint(config, "expander", ws, log=ctx.log) if model else None
    judge = resolve_endpoint(config, "judge", ws, log=ctx.log) if model else None
    counts = await expand_round(ExpandContext(config, store, expander, judge, ctx.today), r)
    record_metrics(store, r, expansion=counts)
    return {}


def assemble(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    store, r = ctx.store, state["round"]
    stage(store, r, "assemble")
    if ctx.arm == STATIC:
        record_assembly(store, static_round(store, r + 1))
    else:
        record_assembly(store, assemble_round(store, r, ctx.config.loop, seed=ctx.config.train.seed, arm=ctx.arm))
    return {}


def evaluate(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = runtime.context
    store, r = ctx.store, state["round"]
    stage(store, r, "evaluate")
    if store.get_round(r).metrics.eval is None:  # (a static baseline's round 1 may come evaluated)
        record_metrics(store, r, eval=evaluate_round(ctx.workspace, ctx.config, r, ctx.log))
    stage(store, r, "done", "done")
    return {}


def advance(state: LoopState) -> dict[str, Any]:
    return {"round": state["round"] + 1}


# -- routing -------------------------------------------------------------------------------------


def after_evaluate(state: LoopState) -> str:
    return "advance" if state["round"] < state["rounds"] else END


# -- the graph -----------------------------------------------------------------------------------

def pausable(name: str, node: Callable[..., Any]) -> Callable[..., Any]:
    """The node, then the context's pause point: inside the node, so a pause asked for here stops
    the run at the very next step boundary (an update streamed out of the graph arrives only once
    the next step has begun)."""
    if asyncio.iscoroutinefunction(node):
        async def run_async(state: LoopState, runtime: Runtime[LoopContext]) -> Any:
            out = await node(state, runtime)
            runtime.context.pause_point(name)
            return out

        return run_async

    def run(state: LoopState, runtime: Runtime[LoopContext]) -> Any:
        out = node(state, runtime)
        runtime.context.pause_point(name)
        return out

    return run


def build_loop_graph(arm: str) -> StateGraph:
    """The loop's graph for an arm (the arm sets its shape). Its nodes, and the verify subgraph's,
    read the run's LoopContext from LangGraph's runtime context: every run of the compiled graph
    is given it (`context=ctx`)."""
    graph = StateGraph(LoopState, context_schema=LoopContext)
    graph.add_node("prepare", pausable("prepare", prepare))
    graph.add_node("train", pausable("train", train))
    graph.add_node("evaluate", pausable("evaluate", evaluate))
    graph.add_node("assemble", pausable("assemble", assemble))
    graph.add_node("advance", advance)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "train")
    if arm == STATIC:
        graph.add_edge("train", "assemble")
    else:
        # The verify subgraph takes a pause request at its end, as it finishes (not in between its
        # nodes: it shares the run control, and would stop itself half-way).
        verify = build_verify_graph().compile()  # (its nodes make their context from the loop's)
        graph.add_node("probe", pausable("probe", probe))
        graph.add_node("verify_stage", verify_stage)
        graph.add_node("verify", verify)
        graph.add_node("expand", pausable("expand", expand))
        graph.add_edge("train", "probe")
        graph.add_edge("probe", "verify_stage")
        graph.add_edge("verify_stage", "verify")
        graph.add_edge("verify", "expand")
        graph.add_edge("expand", "assemble")
    graph.add_edge("assemble", "evaluate")
    graph.add_conditional_edges("evaluate", after_evaluate, ["advance", END])
    graph.add_edge("advance", "train")
    return graph


def _mark_paused(store: Store, round: int) -> None:
    """The round a pause stopped in is "paused", not running; the time of its finished stage is
    counted now, so the time lying paused counts in no stage."""
    info = store.get_round(round)
    if info is None or info.status != "running":  # (a pause after a round's last stage: it is done)
        return
    metrics = _stage_clock(info, "paused", utc_now()).updated(stage_started=None)
    store.upsert_round(info.model_copy(update={"status": "paused", "metrics": metrics}))


def _stage_clock(info: Round, name: str, now: str) -> RoundMetrics:
    """The round's metrics with the wall time of the stage that ends as `name` begins
    (`stage_seconds`). A stage entered again after a kill keeps its first start, so its time
    includes the time the run lay dead."""
    if info.stage == name and info.status == "running":
        return info.metrics.model_copy(deep=True)
    seconds = dict(info.metrics.stage_seconds or {})
    started = info.metrics.stage_started
    if info.stage and started and info.status == "running":
        elapsed = datetime.fromisoformat(now) - datetime.fromisoformat(started)
        seconds[info.stage] = round(seconds.get(info.stage, 0.0) + elapsed.total_seconds(), 1)
    return info.metrics.updated(stage_seconds=seconds or info.metrics.stage_seconds,
                                stage_started=None if name == "done" else now)


@dataclass(frozen=True)
class LoopOutcome:
    round: int  # the round reached
    paused: bool  # waiting for a review of the round's verdicts
    finished: bool
    stopped_after: str | None = None  # the node after which the run stopped because a pause was asked

    @property
    def stopped(self) -> bool:
        """The run stopped on request (see `request_pause`); running the loop again goes on."""
        return self.stopped_after is not None


def run_loop(workspace: Path, config: WorkspaceConfig, *, rounds: int | None = None, arm: str | None = None,
             resume_review: bool = False, log: Callable[[str], None] = print,
             train: Callable[..., None] | None = None) -> LoopOutcome:
    """Run the loop to its last round, continuing a killed or paused run of the same workspace.
    `arm` is the arm the workspace runs (default: what its arm.json says, else the loop)."""
    arm = check_arm(arm or arm_of(workspace))
    if arm != arm_of(workspace):
        raise LoopError(f"{workspace} runs the {arm_of(workspace)!r} arm, not {arm!r}; an arm runs in a workspace "
                        "of its own, made by 'looptool loop --arm NAME' from the loop's workspace")
    with _only_loop(workspace):
        return _run_loop(workspace, config, rounds=rounds, arm=arm, resume_review=resume_review, log=log,
                         train=train)


def _run_loop(workspace: Path, config: WorkspaceConfig, *, rounds: int | None, arm: str, resume_review: bool,
              log: Callable[[str], None], train: Callable[..., None] | None) -> LoopOutcome:
    from looptool.checkpoint import open_checkpointer

    last = rounds or config.loop.rounds
    saver = open_checkpointer(workspace / DB_FILE)
    try:
        with Store.open(workspace / DB_FILE) as store:
            ctx = LoopContext(workspace, config, store, arm=arm, log=log)
            if train is not None:
                ctx.train = train
            graph = build_loop_graph(ctx.arm).compile(checkpointer=saver)
            # (The static arm's thread keeps the name it had before there were other arms.)
            thread = {"configurable": {"thread_id": "loop-static" if arm == STATIC else "loop"},
                      "recursion_limit": 200}
            pending = graph.get_state(thread, subgraphs=True)
            given: Any
            if pending.next and _interrupted(pending):
                if not resume_review:
                    return LoopOutcome(pending.values.get("round", 1), True, False)
                given = Command(resume=True)
            elif pending.next or pending.tasks:
                # Killed mid-way: go on from the last checkpoint. `next` is empty too when every
                # task of that checkpoint had written its result before the kill (e.g. `advance`,
                # killed before the next checkpoint): the graph has not ended while tasks remain.
                given = None
            else:
                done = pending.values.get("round", 0) if pending.values else 0
                given = {"round": done + 1 if done else 1, "rounds": last}
                if done and done >= last:
                    return LoopOutcome(done, False, True)
            # A pause request older than this run (a loop that ended before taking it) is void.
            _take_pause_request(workspace)
            control = RunControl()
            asked: list[str] = []

            def pause_point(node: str) -> None:
                if not control.drain_requested and _take_pause_request(workspace):
                    asked.append(node)
                    control.request_drain("pause")  # LangGraph stops before the next step starts

            ctx.pause_point = pause_point
            stopped_after = None
            try:
                # "sync": each step's checkpoint is written before the next step starts, so a run
                # that stops at a step boundary continues from the next node.
                result = asyncio.run(graph.ainvoke(given, thread, durability="sync", control=control,
                                                   context=ctx))
            except GraphDrained:
                result, stopped_after = {}, (asked[-1] if asked else "a node")
            state = graph.get_state(thread)
            paused = bool(result.get("__interrupt__")) if isinstance(result, dict) else False
            if stopped_after is not None:
                message = f"paused after {stopped_after} as asked"
                _mark_paused(store, state.values.get("round", 1))
                store.log_event("info", "loop", message)
                log(f"loop {message}; run 'looptool loop' again to go on")
            return LoopOutcome(state.values.get("round", 1), paused, not state.next, stopped_after)
    finally:
        saver.conn.close()


def _interrupted(snapshot: Any) -> bool:
    if snapshot.interrupts:
        return True
    return any(_interrupted(t.state) for t in snapshot.tasks if getattr(t, "state", None) is not None)
