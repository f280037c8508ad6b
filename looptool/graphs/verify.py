"""Judgement-guided label verification (JGLV) of one round, as a checkpointed graph:

    judge -> review -> apply

* judge: the judge agent gives a verdict on every failed probe of the round that has none yet,
  with `[loop] concurrency` requests in flight; each verdict is written as it arrives, so a killed
  run asks only for the missing ones.
* review: with `[loop] review` on, the graph pauses (a LangGraph interrupt) until a person has
  accepted the verdicts or overridden some (`Store.set_human_override`) and the run is resumed.
* apply: LABEL_WRONG -> the prediction becomes the label (label_version + 1, the old label kept in
  the label history); BOTH_WRONG -> the sample leaves training (inactive, the verdict flags it);
  PRED_WRONG -> an error sample, kept for expansion; BOTH_OK -> kept. A person's override wins.
  Applying twice changes nothing: a correction is recorded with the reason "round R: LABEL_WRONG",
  and a sample that has that record is not corrected again.

The state carries the round and counters, never samples.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from looptool.agents.judge import NO_VERDICT, judge_sample, prediction_label
from looptool.concurrency import run_all
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.schema import Probe
from looptool.serving.client import Endpoint, resolve_endpoint
from looptool.store import Store


class VerifyState(TypedDict, total=False):
    round: int
    judged: int  # verdicts written by this run
    applied: dict[str, int]  # verdict kind -> samples it applied to


@dataclass
class VerifyContext:
    workspace: Path
    config: WorkspaceConfig
    store: Store
    today: str
    log: Callable[[str], None] = print
    on_applied: Callable[[], None] | None = None  # called as apply ends (the loop's pause point)

    def judge_endpoint(self) -> Endpoint:
        # Resolved when the judge runs: a managed server may have been stopped (for training) and
        # come back on another port.
        return resolve_endpoint(self.config, "judge", self.workspace, log=self.log)


def correction_reason(round: int) -> str:
    return f"round {round}: LABEL_WRONG"


def build_verify_graph(ctx: VerifyContext) -> StateGraph:
    store, loop = ctx.store, ctx.config.loop

    async def judge(state: VerifyState) -> dict[str, Any]:
        r = state["round"]
        have = {v.sample_id for v in store.verdicts(r)}
        todo = [p for p in store.probes(r, "failed") if p.sample_id not in have]
        if not todo:
            return {"judged": 0}
        endpoint = ctx.judge_endpoint()
        gate = asyncio.Semaphore(loop.concurrency)

        async def one(probe: Probe) -> None:
            sample = await asyncio.to_thread(store.get_sample, probe.sample_id)
            async with gate:
                verdict, _ = await judge_sample(
                    endpoint, sample, probe, date=ctx.today, votes=loop.judge_votes,
                    temperature=loop.judge_temperature, max_attempts=loop.judge_attempts,
                    judge_model=endpoint.model,
                )  # fmt: skip
            await asyncio.to_thread(store.upsert_verdict, verdict)
            if verdict.rationale.startswith(NO_VERDICT):
                ctx.log(f"round {r}: sample {sample.id}: {verdict.rationale}")
                await asyncio.to_thread(store.log_event, "warning", "verify", f"round {r}: sample {sample.id}: "
                                        f"{verdict.rationale}")

        await run_all(one(p) for p in todo)
        return {"judged": len(todo)}

    def review(state: VerifyState) -> dict[str, Any]:
        if loop.review:
            counts = Counter(v.verdict for v in store.verdicts(state["round"]))
            interrupt({"round": state["round"], "verdicts": dict(counts)})
        return {}

    def apply(state: VerifyState) -> dict[str, Any]:
        r = state["round"]
        probes = {p.sample_id: p for p in store.probes(r, "failed")}
        applied: Counter = Counter()
        with store.transaction():
            for v in store.verdicts(r):
                kind = v.human_override or v.verdict
                applied[kind] += 1
                if kind == "LABEL_WRONG":
                    label = v.corrected_label or (prediction_label(probes[v.sample_id]) if v.sample_id in probes else None)
                    if label is not None and not store.has_label_change(v.sample_id, correction_reason(r)):
                        store.set_sample_label(v.sample_id, label, reason=correction_reason(r))
                elif kind == "BOTH_WRONG":
                    store.set_sample_active(v.sample_id, False)
        if ctx.on_applied is not None:
            ctx.on_applied()
        return {"applied": dict(applied)}

    graph = StateGraph(VerifyState)
    graph.add_node("judge", judge)
    graph.add_node("review", review)
    graph.add_node("apply", apply)
    graph.add_edge(START, "judge")
    graph.add_edge("judge", "review")
    graph.add_edge("review", "apply")
    graph.add_edge("apply", END)
    return graph


@dataclass(frozen=True)
class VerifyOutcome:
    round: int
    paused: bool  # waiting for review: run again with resume=True once reviewed
    judged: int
    applied: dict[str, int]


def run_verify(workspace: Path, config: WorkspaceConfig, round: int, *, resume: bool = False,
               log: Callable[[str], None] = print) -> VerifyOutcome:
    """Verify the round's failed probes: continue a run that was killed or paused for review
    (`resume=True` releases the review pause), or start one."""
    from looptool.graphs.checkpoint import open_checkpointer

    saver = open_checkpointer(workspace / DB_FILE)
    try:
        with Store.open(workspace / DB_FILE) as store:
            ctx = VerifyContext(workspace, config, store, date.today().isoformat(), log)
            graph = build_verify_graph(ctx).compile(checkpointer=saver)
            thread = {"configurable": {"thread_id": f"verify-round-{round}"}}
            pending = graph.get_state(thread)
            if pending.next and pending.interrupts:
                if not resume:
                    return VerifyOutcome(round, True, 0, {})
                given: Any = Command(resume=True)
            elif pending.next:
                given = None  # killed mid-way: go on from the last checkpoint
            else:
                given = {"round": round, "judged": 0, "applied": {}}
            result = asyncio.run(graph.ainvoke(given, thread))
            paused = bool(result.get("__interrupt__"))
            return VerifyOutcome(round, paused, result.get("judged", 0), result.get("applied", {}))
    finally:
        saver.conn.close()
