"""The seed-dialogue graph: planner -> user -> assistant (self-consistent) -> tool -> ... -> finish.

Routing follows the method: an empty dialogue goes to the planner; a user message to the
assistant; an assistant turn with calls to the tool agent; tool results back to the assistant; an
assistant text to the user until the plan is done or the turn budget is spent. The assistant is
sampled twice in parallel (`Send` fan-out); two samples that agree are accepted, otherwise a
third is drawn and a 2-of-3 majority wins, otherwise the turn is kept but masked (it yields no
sample). Where the grammar admits only a text answer, one sample is drawn: any two texts agree.
An agent that fails `max_attempts` times drops the dialogue with its reason.

A finished dialogue is verified in two tiers before it may yield samples. Tier 1 (`verify`) are
rule checks: calls parse, name offered tools, fit their schemas, the scenario happened. Tier 2
(`judge`, when `[seed] judge_check` is on) asks the judge to check the label of every sample a
call turn makes, as the expansions are checked before they join. Both tiers reject at the same
granularity: a failed check drops the whole dialogue, its status "dropped" and its error a stable
reason ("judge rejected call turn m5: <the judge's analysis>"), so rejections are counted by kind
as the rule checks' are. Dropping only the turn would keep later samples whose context is built on
the wrong call and the tool results it got, which the rule checks never allow either. The judge
stops at the first rejected turn (the dialogue is dropped: the rest would not be used).

State holds ids and counters only; messages, plans and traces are rows in the store, written by
the node that makes them. A node re-run after a crash rewrites the same rows (messages by index,
traces by key), so a resumed dialogue never duplicates anything. The judge's answer on a turn is
read back from its trace rows when there are any, so a re-run judge node asks only about turns it
has not checked yet. Each dialogue is one thread of the SQLite checkpointer.

The state (`SeedState`, `AssistantTask`) and the run context (`SeedContext`: store, settings,
endpoints, tools) are in state.py. Every node and routing function here is a top-level function
of the state and, where it needs the context, of LangGraph's runtime (`runtime.context` is the
SeedContext each run is given), so each can be called alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from looptool.agents.assistant import assistant_turn
from looptool.agents.base import AgentResult
from looptool.agents.judge import check_label
from looptool.agents.planner import plan_dialogue
from looptool.agents.tool import tool_result
from looptool.agents.user import user_turn
from looptool.calls import calls_match
from looptool.schema import Dialogue, Label, Message, Plan, Sample, ToolSpec
from looptool.seed.samples import turn_samples
from looptool.seed.scenarios import draft_plan
from looptool.seed.state import AssistantTask, SeedContext, SeedState
from looptool.seed.verify import NOT_LANGUAGE, verify
from looptool.store import Store

REASON_SEPARATOR = " | "  # between the reasons of a dialogue that failed verification in several ways
JUDGE_REJECTED = "judge rejected call turn"  # how the reason of a turn the judge rejected starts


def judge_rejection(idx: int, analysis: str) -> str:
    """The drop reason of a dialogue whose call turn (message `idx`) the judge rejected."""
    analysis = " ".join(analysis.replace("|", "/").split())  # one line, never a REASON_SEPARATOR
    return f"{JUDGE_REJECTED} m{idx}: {analysis}"


def reason_kind(reason: str) -> str:
    """A drop reason without the details of its dialogue, so that reasons can be counted by kind."""
    for kind in (JUDGE_REJECTED, NOT_LANGUAGE):
        if reason.startswith(kind):
            return kind
    return reason


# -- what the nodes read and record ----------------------------------------------------------------


def load(store: Store, dialogue_id: str) -> tuple[Plan, list[ToolSpec]]:
    """The dialogue's plan and its tools."""
    d = store.get_dialogue(dialogue_id, with_messages=False)
    return Plan.model_validate(d.plan), [store.get_tool(t) for t in d.tool_ids]


def record(store: Store, dialogue_id: str, key: str, msg_idx: int | None, result: AgentResult) -> None:
    """Every attempt of an agent's call as the dialogue's trace rows `key.a0`, `key.a1`, ..."""
    store.clear_traces(dialogue_id, key)
    for a, attempt in enumerate(result.attempts):
        c = attempt.completion
        store.upsert_trace(
            dialogue_id, f"{key}.a{a}", agent=result.agent, role=result.agent, prompt_ref=result.prompt_ref,
            status="ok" if attempt.error is None else "error", msg_idx=msg_idx, raw=c.content if c else None,
            parsed=attempt.parsed, error=attempt.error, model=c.model if c else None,
            latency_ms=c.latency_ms if c else None, prompt_tokens=c.prompt_tokens if c else None,
            completion_tokens=c.completion_tokens if c else None,
        )  # fmt: skip


def usage(result: AgentResult) -> dict[str, Any]:
    """The model and token counts of the call's last attempt, as a message row keeps them."""
    c = result.attempts[-1].completion
    if c is None:
        return {}
    return {"model": c.model, "latency_ms": c.latency_ms, "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens}  # fmt: skip


def checked_samples(ctx: SeedContext, did: str) -> tuple[list[str], dict[int, Sample]]:
    """Tier 1: why the dialogue is not usable (empty when it passed), and its samples by turn."""
    cfg = ctx.config
    p, tools = load(ctx.store, did)
    rows = ctx.store.message_rows(did)
    reasons = verify(p, tools, rows)
    if reasons:
        return reasons, {}
    samples, skipped = turn_samples(did, p, tools, rows, budget=cfg.history_token_budget,
                                    count_tokens=ctx.count_tokens, final_replies=cfg.final_replies_as_samples)  # fmt: skip
    if not samples:
        return ["no usable sample: " + ", ".join(sorted(skipped))], {}
    return [], samples


def stored_check(store: Store, did: str, idx: int) -> tuple[dict | None, str | None] | None:
    """The judge's answer on a turn as its trace rows keep it (value, error); None if it was not asked."""
    key = f"m{idx}.judge.a"
    attempts = [t for t in store.traces(did) if t["call_key"].startswith(key)]
    if not attempts:
        return None
    last = max(attempts, key=lambda t: int(t["call_key"][len(key) :]))
    return (last["parsed"], None) if last["status"] == "ok" else (None, last["error"])


# -- the nodes -------------------------------------------------------------------------------------


async def plan(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store, cfg = ctx.store, ctx.config
    did = state["dialogue_id"]
    skeleton, specs = draft_plan(state["index"], ctx.seed, cfg, ctx.tool_records)
    ids = {r["spec"].name: r["id"] for r in ctx.tool_records}
    header = Dialogue(id=did, plan=skeleton.model_dump(), tool_ids=[ids[s.name] for s in specs],
                      status="running", thread_id=did)  # fmt: skip
    with store.transaction():
        store.upsert_dialogue(header)
        store.reset_dialogue(did)  # a plan starts the dialogue afresh, even one begun before
    result = await plan_dialogue(ctx.endpoints["planner"], skeleton, {s.name: s for s in specs},
                                 max_attempts=cfg.max_attempts, temperature=cfg.temperature)  # fmt: skip
    with store.transaction():
        record(store, did, "plan", None, result)
        if result.value is None:
            return {"outcome": "dropped", "error": result.error}
        store.upsert_dialogue(header.model_copy(update={"plan": result.value.model_dump()}))
    # A fresh start forgets every counter and any assistant samples a killed run left behind.
    return {"n_turns": len(result.value.turns), "n_messages": 0, "turn": 0, "action": 0, "outcome": "",
            "candidates": None}  # fmt: skip


async def user(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store, cfg = ctx.store, ctx.config
    did, n = state["dialogue_id"], state["n_messages"]
    p, _ = load(store, did)
    history = store.messages(did)[:n]
    result = await user_turn(ctx.endpoints["user"], p, p.turns[state["turn"]], history, max_attempts=cfg.max_attempts,
                             temperature=cfg.temperature, force_mentions=ctx.guidance == "grammar")  # fmt: skip
    with store.transaction():
        record(store, did, f"m{n}.user", n, result)
        if result.value is None:
            return {"outcome": "dropped", "error": result.error}
        store.add_messages(did, [result.value], n, **usage(result))
    return {"n_messages": n + 1, "turn": state["turn"] + 1, "action": 0}


async def assistant(task: AssistantTask, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store, cfg = ctx.store, ctx.config
    did, n, k = task["dialogue_id"], task["n_messages"], task["k"]
    p, tools = load(store, did)
    history = store.messages(did)[:n]
    expected = p.expected(task["turn"] - 1, task["action"])
    result = await assistant_turn(ctx.endpoints["assistant"], tools, history, expected, guidance=ctx.guidance,
                                  max_attempts=cfg.max_attempts, temperature=cfg.assistant_temperature)  # fmt: skip
    record(store, did, f"m{n}.assistant.s{k}", n, result)
    label = None if result.value is None else result.value.model_dump()
    return {"candidates": [{"k": k, "label": label, "error": result.error, "usage": usage(result)}]}


def vote(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    did, n = state["dialogue_id"], state["n_messages"]
    candidates = sorted(state["candidates"], key=lambda c: c["k"])
    failed = [c for c in candidates if c["label"] is None]
    if failed:
        return {"outcome": "dropped", "error": failed[0]["error"], "candidates": None}
    labels = [Label.model_validate(c["label"]) for c in candidates]
    pairs = {1: [(0, 0)], 2: [(0, 1)], 3: [(0, 1), (0, 2), (1, 2)]}[len(labels)]
    winner = next((i for i, j in pairs if _agree(labels[i], labels[j])), None)
    if winner is None and len(labels) == 2:
        return {"vote": "third"}
    chosen = 0 if winner is None else winner
    label = labels[chosen]
    message = Message(role="assistant", agent="assistant", tool_calls=label.calls, content=label.text)
    runtime.context.store.add_messages(did, [message], n, masked=winner is None, **candidates[chosen]["usage"])
    return {"n_messages": n + 1, "action": state["action"] + 1, "candidates": None,
            "vote": "masked" if winner is None else "accepted", "last": "text" if label.is_no_call else "calls"}  # fmt: skip


async def tool(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store, cfg = ctx.store, ctx.config
    did, n = state["dialogue_id"], state["n_messages"]
    _, tools = load(store, did)
    calls = store.messages(did)[n - 1].tool_calls
    results = await asyncio.gather(*(tool_result(ctx.endpoints["tool"], tools, c, max_attempts=cfg.max_attempts,
                                                 temperature=cfg.temperature) for c in calls))  # fmt: skip
    with store.transaction():
        for j, (call, result) in enumerate(zip(calls, results)):
            record(store, did, f"m{n + j}.tool", n + j, result)
        failed = next((r for r in results if r.value is None), None)
        if failed is not None:
            return {"outcome": "dropped", "error": failed.error}
        for j, (call, result) in enumerate(zip(calls, results)):
            message = Message(role="tool", agent="tool", name=call.name, tool_call_id=f"call_{n - 1}_{j}",
                              content=result.value.to_message_content())  # fmt: skip
            store.add_messages(did, [message], n + j, **usage(result))
    return {"n_messages": n + len(calls)}


def verify_rules(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    reasons, _ = checked_samples(runtime.context, state["dialogue_id"])
    return {"outcome": "dropped", "error": REASON_SEPARATOR.join(reasons)} if reasons else {}


async def judge(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store = ctx.store
    did = state["dialogue_id"]
    _, samples = checked_samples(ctx, did)
    for idx, sample in samples.items():
        if sample.label.is_no_call:
            continue
        checked = stored_check(store, did, idx)
        if checked is None:
            result = await check_label(ctx.judge, sample, date=ctx.today, max_attempts=ctx.config.max_attempts)
            with store.transaction():  # all attempts or none: the last stored one is the answer
                record(store, did, f"m{idx}.judge", idx, result)
            checked = (result.value, result.error)
        value, error = checked
        if value is None:
            return {"outcome": "dropped", "error": error}
        if not value["correct"]:
            return {"outcome": "dropped", "error": judge_rejection(idx, value["analysis"])}
    return {}


def finish(state: SeedState, runtime: Runtime[SeedContext]) -> dict:
    ctx = runtime.context
    store = ctx.store
    did = state["dialogue_id"]
    if state.get("outcome") == "dropped":
        reasons, samples = [state.get("error") or "dropped"], {}
    else:
        reasons, samples = checked_samples(ctx, did)
    with store.transaction():
        if reasons:
            store.set_dialogue_samples(did, [])
            store.set_dialogue_status(did, "dropped", REASON_SEPARATOR.join(reasons))
            return {"outcome": "dropped", "error": REASON_SEPARATOR.join(reasons)}
        store.set_dialogue_samples(did, list(samples.values()))
        store.set_dialogue_status(did, "done")
    return {"outcome": "done"}


# -- routing ---------------------------------------------------------------------------------------


def sample_assistant(state: SeedState, ctx: SeedContext, ks: tuple[int, ...] = (0, 1)) -> list[Send]:
    """The assistant samples to draw for the pending turn, one `Send` each."""
    task = {key: state[key] for key in ("dialogue_id", "n_messages", "turn", "action")}
    if ks == (0, 1) and ctx.guidance == "grammar":
        p, _ = load(ctx.store, state["dialogue_id"])
        if p.expected(state["turn"] - 1, state["action"]).kind != "call":
            # The grammar admits only text, and any two texts agree: a second sample
            # could not disagree, so it would only cost the server a request.
            ks = (0,)
    return [Send("assistant", {**task, "k": k}) for k in ks]


def after_plan(state: SeedState) -> str:
    return "finish" if state.get("outcome") == "dropped" else "user"


def after_user(state: SeedState, runtime: Runtime[SeedContext]) -> str | list[Send]:
    return "finish" if state.get("outcome") == "dropped" else sample_assistant(state, runtime.context)


def after_vote(state: SeedState, runtime: Runtime[SeedContext]) -> str | list[Send]:
    if state.get("outcome") == "dropped":
        return "finish"
    if state["vote"] == "third":
        return sample_assistant(state, runtime.context, (2,))
    if state["n_messages"] >= runtime.context.config.max_messages:
        return "verify"
    if state["last"] == "calls":
        return "tool"
    return "user" if state["turn"] < state["n_turns"] else "verify"


def after_tool(state: SeedState, runtime: Runtime[SeedContext]) -> str | list[Send]:
    if state.get("outcome") == "dropped":
        return "finish"
    if state["n_messages"] >= runtime.context.config.max_messages:
        return "verify"
    return sample_assistant(state, runtime.context)


def after_verify(state: SeedState, runtime: Runtime[SeedContext]) -> str:
    return "finish" if state.get("outcome") == "dropped" or runtime.context.judge is None else "judge"


# -- the graph -------------------------------------------------------------------------------------


def build_seed_graph() -> StateGraph:
    """The graph of one dialogue. Its nodes read the run's SeedContext from LangGraph's runtime
    context: every run of the compiled graph is given it (`context=ctx`)."""
    graph = StateGraph(SeedState, context_schema=SeedContext)
    graph.add_node("plan", plan)
    graph.add_node("user", user)
    graph.add_node("assistant", assistant, input_schema=AssistantTask)
    graph.add_node("vote", vote)
    graph.add_node("tool", tool)
    graph.add_node("verify", verify_rules)
    graph.add_node("judge", judge)
    graph.add_node("finish", finish)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", after_plan, ["user", "finish"])
    graph.add_conditional_edges("user", after_user, ["assistant", "finish"])
    graph.add_edge("assistant", "vote")
    graph.add_conditional_edges("vote", after_vote, ["assistant", "tool", "user", "verify", "finish"])
    graph.add_conditional_edges("tool", after_tool, ["assistant", "verify", "finish"])
    graph.add_conditional_edges("verify", after_verify, ["judge", "finish"])
    graph.add_edge("judge", "finish")
    graph.add_edge("finish", END)
    return graph


def _agree(a: Label, b: Label) -> bool:
    """Self-consistency: the same calls (as a multiset), or both a text answer."""
    if a.is_no_call or b.is_no_call:
        return a.is_no_call and b.is_no_call
    return calls_match(a.calls, b.calls)
