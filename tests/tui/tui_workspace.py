"""A small workspace for the TUI tests, made with `looptool init` and the Store API only (no model):
tools, two seed dialogues with messages and agent traces (one rejected turn), samples of every
origin, two rounds (round 1 done, round 2 waiting at the review gate), probes of every category,
verdicts of every kind, GRPO steps with rewards, evaluation accuracy in the metrics, and events.

Every timestamp comes from a fixed clock, so screenshots of the app are the same on every run.
The review gate is a real pending LangGraph interrupt on the loop's thread, made by a one-node
graph, because that is what the TUI (like `run_loop`) reads to know the loop waits there.
"""

from __future__ import annotations

import itertools
import json
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

from typer.testing import CliRunner

from looptool.cli import app as cli_app
from looptool.config import DB_FILE
from looptool.schema import Dialogue, Label, Message, Probe, Round, RoundMetrics, Sample, ToolCall, ToolSpec, Verdict
from looptool.store import Store

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
NOW = datetime(2026, 1, 2, 4, 0, 0, tzinfo=timezone.utc)  # the app's clock in tests
ROUND2_VERIFY_STARTED = "2026-01-02T03:50:00.000+00:00"

WEATHER = ToolSpec(name="get_weather", description="Current weather in a city.",
                   parameters={"type": "object", "properties": {"city": {"type": "string"},
                                                                "unit": {"type": "string", "enum": ["C", "F"]}},
                               "required": ["city"]})
TABLE = ToolSpec(name="book_table", description="Book a restaurant table.",
                 parameters={"type": "object", "properties": {"restaurant": {"type": "string"},
                                                              "people": {"type": "integer"}},
                             "required": ["restaurant", "people"]})
CURRENCY = ToolSpec(name="convert_currency", description="Convert an amount between currencies.",
                    parameters={"type": "object", "properties": {"amount": {"type": "number"},
                                                                 "to": {"type": "string"}},
                                "required": ["amount", "to"]})


@contextmanager
def fixed_clock():
    """Store timestamps from a clock that starts at START and ticks one second per call."""
    ticks = itertools.count()
    with mock.patch("looptool.store.clock.utc_now",
                    lambda: (START + timedelta(seconds=next(ticks))).isoformat(timespec="milliseconds")):
        yield


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def _sample(user: str, tools: list[ToolSpec], label: Label, **fields) -> Sample:
    return Sample(messages=[Message(role="system", content="You can call tools."),
                            Message(role="user", content=user)], tools=tools, label=label, **fields)


def build(ws: Path) -> dict[str, str]:
    """Make the workspace at `ws`; returns the ids the tests refer to by name."""
    result = CliRunner().invoke(cli_app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    ids: dict[str, str] = {}
    with fixed_clock(), Store.open(ws / DB_FILE) as store:
        tool_ids = store.upsert_tools([WEATHER, TABLE, CURRENCY], domain="travel", source="synth")

        # -- two seed dialogues, with their agent traces ------------------------------------------
        d1 = Dialogue(id="d_weather", status="done", tool_ids=tool_ids[:1], thread_id="d_weather",
                      plan={"scenario": "single", "split": "train", "tools": ["get_weather"],
                            "persona": "a hiker planning a weekend", "goal": "know the weather in Oslo",
                            "turns": [{"kind": "task", "actions": [
                                {"kind": "call", "calls": [{"tool": "get_weather", "arguments": {"city": "Oslo"}}]},
                                {"kind": "reply"}]}]})
        store.upsert_dialogue(d1)
        weather_msgs = [Message(role="user", content="What's the weather in Oslo?", agent="user"),
                        Message(role="assistant", tool_calls=[call("get_weather", city="Oslo")], agent="assistant"),
                        Message(role="tool", name="get_weather", content='{"temp": 3, "sky": "snow"}', agent="tool"),
                        Message(role="assistant", content="It is 3 degrees and snowing in Oslo.", agent="assistant")]
        for i, m in enumerate(weather_msgs):
            store.add_messages("d_weather", [m], i, model="smollm2-135m-instruct", latency_ms=120.0 + 10 * i,
                               prompt_tokens=200 + i, completion_tokens=20 + i)
        store.upsert_trace("d_weather", "plan.a0", agent="planner", role="planner", prompt_ref="planner.md",
                           status="ok", raw='{"goal": "know the weather in Oslo"}',
                           parsed={"goal": "know the weather in Oslo"}, model="smollm2-135m-instruct",
                           latency_ms=300.0, prompt_tokens=400, completion_tokens=30)
        store.upsert_trace("d_weather", "m0.user.a0", agent="user", role="user", prompt_ref="user_task.md",
                           status="ok", msg_idx=0, raw="What's the weather in Oslo?",
                           parsed={"message": "What's the weather in Oslo?"}, model="smollm2-135m-instruct",
                           latency_ms=130.0, prompt_tokens=180, completion_tokens=12)
        store.upsert_trace("d_weather", "m1.assistant.s0.a0", agent="assistant", role="assistant",
                           prompt_ref="assistant.md", status="error", msg_idx=1, raw='{"calls": [{"name": "get_wether"',
                           error="output is not valid JSON: unterminated object", model="smollm2-135m-instruct",
                           latency_ms=210.0, prompt_tokens=220, completion_tokens=16)
        store.upsert_trace("d_weather", "m1.assistant.s0.a1", agent="assistant", role="assistant",
                           prompt_ref="assistant.md", status="ok", msg_idx=1,
                           raw='{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}',
                           parsed={"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
                           model="smollm2-135m-instruct", latency_ms=190.0, prompt_tokens=220, completion_tokens=24)
        store.upsert_trace("d_weather", "m2.tool.a0", agent="tool", role="tool", prompt_ref="tool.md", status="ok",
                           msg_idx=2, raw='{"temp": 3, "sky": "snow"}', parsed={"temp": 3, "sky": "snow"},
                           model="smollm2-135m-instruct", latency_ms=150.0, prompt_tokens=150, completion_tokens=14)

        d2 = Dialogue(id="d_booking", status="dropped", error="the assistant never called book_table",
                      tool_ids=tool_ids[1:2], thread_id="d_booking",
                      plan={"scenario": "missing_argument", "split": "train", "tools": ["book_table"],
                            "persona": "a busy parent", "goal": "a table for four at Luigi's",
                            "turns": [{"kind": "task", "withhold": ["people"], "actions": [
                                {"kind": "ask", "missing": ["people"]}]}]})
        store.upsert_dialogue(d2)
        store.add_messages("d_booking", [Message(role="user", content="Book Luigi's for tonight.", agent="user"),
                                         Message(role="assistant", content="For how many people?", agent="assistant")],
                           0, model="smollm2-135m-instruct", latency_ms=140.0, prompt_tokens=190, completion_tokens=9)
        store.upsert_trace("d_booking", "m1.assistant.s0.a0", agent="assistant", role="assistant",
                           prompt_ref="assistant.md", status="ok", msg_idx=1, raw='{"reply": "For how many people?"}',
                           parsed={"reply": "For how many people?"}, model="smollm2-135m-instruct",
                           latency_ms=140.0, prompt_tokens=190, completion_tokens=9)

        # -- samples of every origin -------------------------------------------------------------
        oslo = _sample("What's the weather in Oslo?", [WEATHER], Label(calls=[call("get_weather", city="Oslo")]),
                       dialogue_id="d_weather", scenario="single")
        luigi = _sample("Book Luigi's for tonight.", [TABLE], Label(text="For how many people?"),
                        dialogue_id="d_booking", scenario="missing_argument")
        templated = [
            _sample(f"Convert {n} dollars to euros.", [CURRENCY], Label(calls=[call("convert_currency", amount=n, to="EUR")]),
                    scenario="single")
            for n in (5, 10, 20, 50)
        ] + [
            _sample(f"Weather in {c} and {c2}?", [WEATHER],
                    Label(calls=[call("get_weather", city=c), call("get_weather", city=c2)]), scenario="parallel")
            for c, c2 in (("Paris", "Rome"), ("Lima", "Quito"))
        ] + [_sample(f"Book {n} seats at Nona's.", [TABLE],
                     Label(calls=[call("book_table", restaurant="Nona's", people=n)]), scenario="single") for n in (2, 3)]
        heldout = [_sample(f"Weather in {c}, in F?", [WEATHER], Label(calls=[call("get_weather", city=c, unit="F")]),
                           split="heldout", scenario="single") for c in ("Austin", "Denver")]
        seed = [oslo, luigi, *templated]
        store.upsert_samples(seed + heldout)
        corrected = _sample("Two for Sushi Go, please.", [TABLE], Label(calls=[call("book_table", restaurant="Sushi Go",
                                                                                        people=2)]),
                            origin="corrected", round_added=2, scenario="single")
        expanded = _sample("What's it like in Bergen right now?", [WEATHER],
                           Label(calls=[call("get_weather", city="Bergen")]), origin="expanded", round_added=2,
                           parent_id=templated[4].id, scenario="single")
        store.upsert_samples([corrected, expanded])
        ids.update(oslo=oslo.id, luigi=luigi.id, expanded=expanded.id, corrected=corrected.id,
                   error_parent=templated[4].id)

        # -- round 1: done ------------------------------------------------------------------------
        r1_data = [s.id for s in seed]
        store.upsert_round(Round(n=1, status="running", stage="train", started_at="2026-01-02T03:05:00.000+00:00",
                                 data_ids=r1_data))
        for step, reward in enumerate((0.1, 0.25, 0.3, 0.5), start=1):
            store.add_train_step(1, "grpo", step, {"reward": reward, "loss": 0.5 / step})
        r1_probes = {
            oslo.id: ("mastered", True, 1.05), luigi.id: ("boundary", True, 2.4),
            templated[0].id: ("failed", False, 3.1), templated[1].id: ("failed", False, 2.9),
            templated[2].id: ("failed", False, 3.5), templated[3].id: ("failed", False, 4.0),
            templated[4].id: ("failed", False, 3.3), templated[5].id: ("mastered", True, 1.1),
            templated[6].id: ("boundary", True, 2.0), templated[7].id: ("mastered", True, 1.2),
        }
        for sid, (category, correct, ppl) in r1_probes.items():
            sample = next(s for s in seed if s.id == sid)
            prediction = sample.label.calls if correct else [call(sample.label.calls[0].name, wrong=True)] \
                if sample.label.calls else None
            store.upsert_probe(Probe(sample_id=sid, round=1, prediction=prediction, raw="<tool_call>…</tool_call>",
                                     correct=correct, ppl=ppl, category=category))
        verdicts1 = {templated[0].id: "LABEL_WRONG", templated[1].id: "BOTH_OK", templated[2].id: "BOTH_WRONG",
                     templated[3].id: "PRED_WRONG", templated[4].id: "PRED_WRONG"}
        for sid, kind in verdicts1.items():
            by_rule = sid == ids.setdefault("by_rule", templated[3].id)  # one verdict reached with no judge asked
            store.upsert_verdict(Verdict(sample_id=sid, round=1, verdict=kind, basis="rule" if by_rule else "judge",
                                         judge_model="" if by_rule else "smollm2-135m-instruct",
                                         rationale="the label is exact by construction (no judge asked)" if by_rule
                                         else f"the judge found {kind.lower().replace('_', ' ')}"))
        store.set_sample_label(templated[0].id, Label(calls=[call("convert_currency", amount=5, to="USD")]),
                               reason="round 1: LABEL_WRONG")
        store.set_sample_active(templated[2].id, False)
        store.add_expansion(templated[4].id, 1, 0, status="kept", dimension="persona", sample=expanded,
                            detail="a fine variation")
        store.add_expansion(templated[4].id, 1, 1, status="rejected", dimension="values",
                            detail="the label calls the wrong city")
        store.add_expansion(templated[3].id, 1, 0, status="invalid", dimension="style",
                            detail="schema violation: people must be an integer")
        store.upsert_round(store.get_round(1).model_copy(update={
            "status": "done", "stage": "done", "finished_at": "2026-01-02T03:40:00.000+00:00",
            "adapter_path": "adapters/round-1",
            "metrics": RoundMetrics.model_validate({
                "composition": {"fresh_seed": len(r1_data)},
                "probe": {"mastered": 3, "boundary": 2, "failed": 5, "boundary_cut": 1.9},
                "expansion": {"kept": 1, "rejected": 1, "invalid": 1},
                "eval": {"heldout": 0.5, "bfcl": {"simple": 0.25, "all": 0.25}},
                "grpo": {"steps": 4}, "stage_seconds": {"prepare": 1.0, "train": 900.0, "probe": 120.0,
                                                        "verify": 300.0, "expand": 400.0, "assemble": 1.0,
                                                        "evaluate": 600.0}})}))

        # -- round 2: waiting at the review gate ------------------------------------------------
        r2_data = [oslo.id, luigi.id, templated[0].id, templated[3].id, templated[4].id, expanded.id, corrected.id]
        for step, reward in enumerate((0.4, 0.55, 0.6), start=1):
            store.add_train_step(2, "grpo", step, {"reward": reward, "loss": 0.3 / step})
        r2_probes = {oslo.id: ("mastered", True), luigi.id: ("boundary", True), templated[0].id: ("failed", False),
                     templated[3].id: ("failed", False), expanded.id: ("failed", False)}
        for sid, (category, correct) in r2_probes.items():
            label = store.get_sample(sid).label
            prediction = label.calls if correct else [call(label.calls[0].name, city="Nowhere")]
            store.upsert_probe(Probe(sample_id=sid, round=2, prediction=prediction, raw="<tool_call>…</tool_call>",
                                     correct=correct, ppl=1.5, category=category))
        for sid, kind in ((templated[0].id, "LABEL_WRONG"), (templated[3].id, "PRED_WRONG"), (expanded.id, "BOTH_OK")):
            store.upsert_verdict(Verdict(sample_id=sid, round=2, verdict=kind, judge_model="smollm2-135m-instruct",
                                         rationale=f"round 2: the judge says {kind}"))
        store.upsert_round(Round(n=2, status="running", stage="verify", started_at="2026-01-02T03:41:00.000+00:00",
                                 data_ids=r2_data,
                                 metrics={"composition": {"corrected": 1, "error": 2, "expanded": 1, "boundary": 2,
                                                          "fresh_seed": 1},
                                          "probe": {"mastered": 1, "boundary": 1, "failed": 3, "boundary_cut": 1.5},
                                          "grpo": {"steps": 3}, "stage_started": ROUND2_VERIFY_STARTED,
                                          "stage_seconds": {"train": 500.0, "probe": 60.0}}))
        for n, (stage, message) in enumerate([
            ("seed", "seed: 1 verified, 1 dropped"), ("train", "sft round 1: 12 steps logged"),
            *[("loop", f"round 1: {s}") for s in ("prepare", "train", "probe", "verify", "expand", "assemble",
                                                    "evaluate", "done (done)")],
            ("eval", "held-out run of round 1: 2 scored, 1 passed"),
            *[("loop", f"round 2: {s}") for s in ("train", "probe", "verify")],
        ]):
            store.log_event("warning" if n == 1 else "info", stage, message)
        store.log_event("error", "loop", "judge: 1 output did not fit its schema, asked again")
        store.log_event("info", "loop", "round 2: paused for review of 3 verdicts")
        _agent_calls(store, templated[4].id)  # last: the clock ticks for these leave every other time as it was
    _pending_review(ws, 2)
    return ids


def _agent_calls(store: Store, parent_id: str) -> None:
    """The judge's verdict on round 1 of `parent_id` and the calls of its two expansion attempts
    (the first kept, the second's expander refused once, then its sample rejected by the judge)."""
    usage = {"model": "smollm2-135m-instruct", "latency_ms": 250.0, "prompt_tokens": 420, "completion_tokens": 40}

    def one(agent: str, prompt_ref: str, raw: str, error: str | None = None) -> dict:
        return {"agent": agent, "prompt_ref": prompt_ref, "prompt": f"({agent} prompt)", "raw": raw,
                "status": "ok" if error is None else "error", "error": error,
                "parsed": None if error is not None else json.loads(raw), **usage}

    verdict = '{"analysis": "the prediction has no city", "verdict": "ANSWER_2_WRONG"}'
    store.record_agent_calls(f"verdict:{parent_id}:1", "v0", [one("judge", "agents/judge.md", verdict)],
                             sample_id=parent_id, round=1)
    bergen = '{"history": [], "user": "What\'s it like in Bergen right now?", ' \
             '"calls": [{"name": "get_weather", "arguments": {"city": "Bergen"}}]}'
    for slot, expander, check in (
        (0, [one("expander", "agents/expander.md", bergen)], '{"analysis": "fine", "correct": true}'),
        (1, [one("expander", "agents/expander.md", '{"history": [], "user": "Weather in', "expander: the answer hit "
                 "max_tokens (1024)"), one("expander", "agents/expander.md", bergen.replace("Bergen", "Nowhere"))],
         '{"analysis": "the label calls the wrong city", "correct": false}'),
    ):
        subject = f"expansion:{parent_id}:1:{slot}"
        store.record_agent_calls(subject, "expand", expander, sample_id=parent_id, round=1)
        store.record_agent_calls(subject, "check", [one("judge", "agents/judge_check.md", check)], sample_id=parent_id,
                                 round=1)


def _pending_review(ws: Path, round: int) -> None:
    """Leave a pending interrupt on the loop's thread, as the review gate of `run_loop` does."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    from looptool.checkpoint import open_checkpointer

    class State(TypedDict, total=False):
        round: int

    def verify(state: State) -> dict:
        interrupt({"round": state["round"]})
        return {}

    graph = StateGraph(State)
    graph.add_node("verify", verify)
    graph.add_edge(START, "verify")
    graph.add_edge("verify", END)
    saver = open_checkpointer(ws / DB_FILE)
    try:
        graph.compile(checkpointer=saver).invoke({"round": round}, {"configurable": {"thread_id": "loop"}})
    finally:
        saver.conn.close()
