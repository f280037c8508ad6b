"""Judgement-guided label verification (JGLV) of one round, as a checkpointed graph:

    judge -> review -> apply

* judge: the judge agent gives a verdict on every failed probe of the round that has none yet,
  with `[loop] concurrency` requests in flight; each verdict is written as it arrives, so a killed
  run asks only for the missing ones. The judge only rules where nobody and no rule has:
  - a person's decision on this version of the sample's label in an earlier round (an override at
    review) is kept: the verdict is that decision again (basis "person"), no judge asked;
  - a failed probe on a label that is exact by construction is PRED_WRONG by rule, and so is every
    failed probe in an arm that runs without the judge (`use_judge=False`, "w/o JGLV");
  - a label that is a reply but not language (`seed.verify.language_problem`, e.g. a code-like
    string a small model wrote) is BOTH_WRONG by rule: the sample leaves training; a prediction
    that is such a reply is PRED_WRONG by rule, so it never becomes a label. The rationale says why.
  Every judge call is recorded (`Store.agent_calls`, subject "verdict:<sample id>:<round>").
* review: with `[loop] review` on, the graph pauses (a LangGraph interrupt) until a person has
  accepted the verdicts or overridden some (`Store.set_human_override`) and the run is resumed.
* apply: LABEL_WRONG -> the prediction becomes the label (label_version + 1, the old label kept in
  the label history); BOTH_WRONG -> the sample leaves training (inactive, the verdict flags it);
  PRED_WRONG -> an error sample, kept for expansion; BOTH_OK -> the prediction becomes an accepted
  alternative of the label (label_version + 1), so the reward, the probe and the held-out evaluation
  never count it wrong again. A person's override wins, except that a reply which is not language
  never becomes a label or an accepted answer (the event log says so). Applying twice changes
  nothing: a label change is recorded with the reason "round R: LABEL_WRONG" (or "round R:
  BOTH_OK"), and a sample that has that record is not changed again for that reason.

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
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from looptool.agents.base import AgentResult, trace_rows
from looptool.agents.judge import EXACT_LABEL, judge_sample, prediction_label, rule_verdict
from looptool.concurrency import run_all
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.schema import Label, Probe, Sample, Verdict, VerdictKind
from looptool.seed.verify import language_problem
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
    use_judge: bool = True  # False: the "w/o JGLV" arm -- every mismatch is the model's error, labels kept

    def judge_endpoint(self) -> Endpoint:
        # Resolved when the judge runs: a managed server may have been stopped (for training) and
        # come back on another port.
        return resolve_endpoint(self.config, "judge", self.workspace, log=self.log)


NO_JUDGE = "no judge in this arm: every mismatch is a model error"


def correction_reason(round: int) -> str:
    return f"round {round}: LABEL_WRONG"


def alternative_reason(round: int) -> str:
    return f"round {round}: BOTH_OK"


def reason_round(reason: str) -> int | None:
    """The round whose verdicts replaced a label, read from the label history's reason ("round R:
    ..."), or None for a change made otherwise. Labels change only when a round's verdicts are
    applied, after that round trained."""
    head, sep, _ = reason.partition(":")
    number = head.removeprefix("round ")
    return int(number) if sep and number != head and number.isdigit() else None


def not_language(answer: Label | None) -> str | None:
    """Why an answer cannot be a label: it is a reply (no call) that is not language; else None."""
    if answer is None or not answer.is_no_call:
        return None
    return language_problem(answer.text)


def rule_decision(sample: Sample, probe: Probe, use_judge: bool) -> tuple[VerdictKind, str] | None:
    """The verdict a rule gives on a failed probe of `sample`, with no judge asked, and why; None
    when the judge rules."""
    if not use_judge:
        return "PRED_WRONG", NO_JUDGE
    if sample.exact:
        return "PRED_WRONG", EXACT_LABEL
    why = not_language(sample.label.primary())
    if why is not None:
        return "BOTH_WRONG", (f"the label is a reply that is not language ({why}): the sample leaves training "
                              "(no judge asked)")
    why = not_language(prediction_label(probe))
    if why is not None:
        return "PRED_WRONG", (f"the prediction is a reply that is not language ({why}), so it cannot be the label "
                              "(no judge asked)")
    return None


def kept_decision(person: Verdict, round: int) -> Verdict:
    """A person's decision on this label version in an earlier round, as this round's verdict."""
    kind = person.effective
    return Verdict(sample_id=person.sample_id, round=round, verdict=kind, judge_model="", basis="person",
                   label_version=person.label_version,
                   rationale=f"a person decided {kind} on this label (version {person.label_version}) in round "
                   f"{person.round}: the decision is kept, no judge asked")


def verify_context(runtime: Runtime) -> VerifyContext:
    """The run's context: the VerifyContext given to a run of verification alone, or one made from
    the loop's context when the loop runs this graph as its subgraph (LangGraph passes the parent's
    runtime context down)."""
    context = runtime.context
    return context if isinstance(context, VerifyContext) else context.verify_context()


async def judge(state: VerifyState, runtime: Runtime) -> dict[str, Any]:
    ctx = verify_context(runtime)
    store, loop, r = ctx.store, ctx.config.loop, state["round"]
    have = {v.sample_id for v in store.verdicts(r)}
    todo = [p for p in store.probes(r, "failed") if p.sample_id not in have]
    if not todo:
        return {"judged": 0}
    samples = await asyncio.to_thread(lambda: {p.sample_id: store.get_sample(p.sample_id) for p in todo})
    decided = await asyncio.to_thread(lambda: {
        p.sample_id: store.person_decision(p.sample_id, samples[p.sample_id].label_version, r) for p in todo})
    ruled = {p.sample_id: rule_decision(samples[p.sample_id], p, ctx.use_judge) for p in todo}
    with store.transaction():
        for p in todo:
            version = samples[p.sample_id].label_version
            if decided[p.sample_id] is not None:
                store.upsert_verdict(kept_decision(decided[p.sample_id], r))
            elif ruled[p.sample_id] is not None:
                kind, why = ruled[p.sample_id]
                store.upsert_verdict(rule_verdict(p.sample_id, r, why, kind).model_copy(
                    update={"label_version": version}))
    to_judge = [p for p in todo if decided[p.sample_id] is None and ruled[p.sample_id] is None]
    if not to_judge:
        return {"judged": len(todo)}  # no judge needed: a managed judge server is not started
    endpoint = ctx.judge_endpoint()
    gate = asyncio.Semaphore(loop.concurrency)

    def record(sample: Sample, verdict: Verdict, results: list[AgentResult[dict]]) -> None:
        # The trace and the verdict land together: a verdict on record always has its calls.
        with store.transaction():
            for vote, result in enumerate(results):
                store.record_agent_calls(f"verdict:{sample.id}:{r}", f"v{vote}", trace_rows(result),
                                         sample_id=sample.id, round=r)
            store.upsert_verdict(verdict)

    async def one(probe: Probe) -> None:
        sample = samples[probe.sample_id]
        async with gate:
            verdict, results = await judge_sample(
                endpoint, sample, probe, date=ctx.today, votes=loop.judge_votes,
                temperature=loop.judge_temperature, max_attempts=loop.judge_attempts,
                judge_model=endpoint.model,
            )  # fmt: skip
        verdict = verdict.model_copy(update={"label_version": sample.label_version})
        await asyncio.to_thread(record, sample, verdict, results)
        if verdict.basis == "no_answer":
            ctx.log(f"round {r}: sample {sample.id}: {verdict.rationale}")
            await asyncio.to_thread(store.log_event, "warning", "verify", f"round {r}: sample {sample.id}: "
                                    f"{verdict.rationale}")

    await run_all(one(p) for p in to_judge)
    return {"judged": len(todo)}


def review(state: VerifyState, runtime: Runtime) -> dict[str, Any]:
    ctx = verify_context(runtime)
    if ctx.config.loop.review:
        counts = Counter(v.verdict for v in ctx.store.verdicts(state["round"]))
        interrupt({"round": state["round"], "verdicts": dict(counts)})
    return {}


def apply(state: VerifyState, runtime: Runtime) -> dict[str, Any]:
    ctx = verify_context(runtime)
    store, r = ctx.store, state["round"]
    probes = {p.sample_id: p for p in store.probes(r, "failed")}
    applied: Counter = Counter()

    def usable(v: Verdict, kind: str, answer: Label | None) -> bool:
        why = not_language(answer)
        if why is not None:  # (only a person's override gets here: the rule gave PRED_WRONG)
            store.log_event("warning", "verify", f"round {r}: sample {v.sample_id}: {kind} not applied: the "
                            f"prediction is a reply that is not language ({why}); the label is kept")
        return why is None

    with store.transaction():
        for v in store.verdicts(r):
            kind = v.effective
            applied[kind] += 1
            if kind == "LABEL_WRONG":
                label = v.corrected_label or (prediction_label(probes[v.sample_id]) if v.sample_id in probes else None)
                if (label is not None and not store.has_label_change(v.sample_id, correction_reason(r))
                        and usable(v, kind, label)):
                    store.set_sample_label(v.sample_id, label, reason=correction_reason(r))
            elif kind == "BOTH_OK":
                answer = prediction_label(probes[v.sample_id]) if v.sample_id in probes else None
                if (answer is not None and not store.has_label_change(v.sample_id, alternative_reason(r))
                        and usable(v, kind, answer)):
                    label = store.get_sample(v.sample_id).label
                    accepted = label.with_alternative(answer)
                    if accepted != label:
                        store.set_sample_label(v.sample_id, accepted, reason=alternative_reason(r))
            elif kind == "BOTH_WRONG":
                store.set_sample_active(v.sample_id, False)
    if ctx.on_applied is not None:
        ctx.on_applied()
    return {"applied": dict(applied)}


def build_verify_graph() -> StateGraph:
    """judge -> review -> apply. Every run is given its context (`context=`): a VerifyContext, or
    the loop's context when it is the loop's subgraph."""
    graph = StateGraph(VerifyState, context_schema=VerifyContext)
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
               log: Callable[[str], None] = print, use_judge: bool = True) -> VerifyOutcome:
    """Verify the round's failed probes: continue a run that was killed or paused for review
    (`resume=True` releases the review pause), or start one. `use_judge=False` runs the "w/o JGLV"
    arm: every failed probe is PRED_WRONG by rule."""
    from looptool.checkpoint import open_checkpointer

    saver = open_checkpointer(workspace / DB_FILE)
    try:
        with Store.open(workspace / DB_FILE) as store:
            ctx = VerifyContext(workspace, config, store, date.today().isoformat(), log, use_judge=use_judge)
            graph = build_verify_graph().compile(checkpointer=saver)
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
            result = asyncio.run(graph.ainvoke(given, thread, context=ctx))
            paused = bool(result.get("__interrupt__"))
            return VerifyOutcome(round, paused, result.get("judged", 0), result.get("applied", {}))
    finally:
        saver.conn.close()
