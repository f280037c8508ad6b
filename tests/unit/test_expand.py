"""Error-driven expansion against the scripted server: k slots per seed (PRED_WRONG and corrected
LABEL_WRONG samples), the expander shown the correct answer, the wrong one and the judge's
analysis; each new sample (possibly multi-turn) validated and checked by the judge before it joins
with its provenance; every model call traced; invalid and rejected attempts counted; a killed or
repeated run neither re-asks nor duplicates."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from looptool.agents.expander import DIMENSIONS, dimension, expander_schema, new_sample
from looptool.agents.judge import answer_text
from looptool.config import DB_FILE, load_config
from looptool.loop.expand import ExpandContext, expand_round, expansion_seeds
from looptool.loop.verify import correction_reason
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Probe, Sample, ToolCall, ToolSpec, Verdict
from looptool.serving.client import ModelOutputError, ServingError
from looptool.store import Store
from tests.fakes import chat_reply, json_schema_responder, schema_name

TOOL = ToolSpec(name="get_weather", description="Weather of a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city"]})
CLOCK = ToolSpec(name="local_time", description="The local time of a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _sample(user: str, label: Label, tools: list[ToolSpec] = [TOOL]) -> Sample:  # noqa: B006 (never mutated)
    return Sample(messages=[system_message(tools), Message(role="user", content=user)], tools=tools, label=label,
                  scenario="single")


def weather(**arguments) -> ToolCall:
    return ToolCall(name="get_weather", arguments=arguments)


ERROR_CALL = _sample("Weather in Paris for 3 days?", Label(calls=[weather(city="Paris", days=3)]), [TOOL, CLOCK])
ERROR_TEXT = _sample("What's the weather?", Label(text="Which city?"))
LABEL_FIXED = _sample("Weather in Oslo for 2 days?", Label(calls=[weather(city="Oslo")]))
FIXED_LABEL = Label(calls=[weather(city="Oslo", days=2)])  # the judge's correction of LABEL_FIXED's label
UNFIXED = _sample("Weather in Lima?", Label(calls=[weather(city="Lima")]))  # LABEL_WRONG, never corrected
GONE = _sample("Weather in Rome?", Label(calls=[weather(city="Rome")]))  # PRED_WRONG, but inactive
PREDICTION = [weather(city="Paris")]  # the policy's wrong answer to ERROR_CALL
ANALYSIS = "the prediction leaves out days=3, which the user asked for"
SEEDS = 3  # ERROR_CALL, ERROR_TEXT, LABEL_FIXED


def judging(reject_every: int = 0):
    """Expander requests get schema instances; the judge's checks pass, except every n-th."""
    expander = json_schema_responder(vary=lambda prompt, nth: nth)
    checks = {"n": 0}

    def respond(path: str, body: dict):
        if schema_name(body) == "expander":
            return expander(path, body)
        checks["n"] += 1
        correct = not (reject_every and checks["n"] % reject_every == 0)
        return 200, chat_reply(json.dumps({"analysis": "checked", "correct": correct}))

    return respond


@pytest.fixture
def ws(workspace: Path) -> Path:
    with Store.open(workspace / DB_FILE) as store:
        for s in (ERROR_CALL, ERROR_TEXT, LABEL_FIXED, UNFIXED, GONE):
            store.upsert_sample(s)
        store.upsert_probe(Probe(sample_id=ERROR_CALL.id, round=1, prediction=PREDICTION, raw="", correct=False))
        store.upsert_verdict(Verdict(sample_id=ERROR_CALL.id, round=1, verdict="PRED_WRONG", rationale=ANALYSIS))
        store.upsert_verdict(Verdict(sample_id=ERROR_TEXT.id, round=1, verdict="BOTH_OK"))
        store.set_human_override(ERROR_TEXT.id, 1, "PRED_WRONG")  # a person's verdict counts
        store.upsert_verdict(Verdict(sample_id=LABEL_FIXED.id, round=1, verdict="LABEL_WRONG",
                                     rationale="the label leaves out days=2", corrected_label=FIXED_LABEL))
        store.set_sample_label(LABEL_FIXED.id, FIXED_LABEL, reason=correction_reason(1))  # as verify's apply does
        store.upsert_verdict(Verdict(sample_id=UNFIXED.id, round=1, verdict="LABEL_WRONG"))
        store.upsert_verdict(Verdict(sample_id=GONE.id, round=1, verdict="PRED_WRONG"))
        store.set_sample_active(GONE.id, False)
    return workspace


def _expand(ws: Path, fake_openai, concurrency: int = 4, retries: int = 3, attempts: int = 3) -> dict[str, int]:
    config = load_config(ws).model_copy(deep=True)
    config.loop.concurrency = concurrency
    config.loop.judge_attempts = attempts
    endpoint = replace(fake_openai.endpoint, max_retries=retries)
    with Store.open(ws / DB_FILE) as store:
        ctx = ExpandContext(config, store, endpoint, endpoint, "2026-11-23")
        return asyncio.run(expand_round(ctx, 1))


def _section(prompt: str, title: str) -> str:
    """The text under one heading of the expander's prompt ("Its correct answer:", ...)."""
    return prompt.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0]


def test_seeds_are_the_errors_and_the_corrected_samples(ws):
    with Store.open(ws / DB_FILE) as store:
        seeds = {s.sample.id: s for s in expansion_seeds(store, 1)}
    assert set(seeds) == {ERROR_CALL.id, ERROR_TEXT.id, LABEL_FIXED.id}  # not the uncorrected nor the inactive
    assert seeds[ERROR_CALL.id].wrong == answer_text(PREDICTION, None)
    assert seeds[ERROR_CALL.id].analysis == ANALYSIS
    assert seeds[ERROR_TEXT.id].wrong == "(not recorded)"  # no probe on record
    assert seeds[LABEL_FIXED.id].sample.label == FIXED_LABEL
    assert seeds[LABEL_FIXED.id].wrong == answer_text(LABEL_FIXED.label.calls, None)


@pytest.mark.slow
def test_seeds_are_expanded_with_provenance_and_traced(ws, fake_openai):
    fake_openai.responder = judging(reject_every=3)
    counts = _expand(ws, fake_openai, concurrency=1)
    k = load_config(ws).loop.expansions_per_error
    assert k == 4 and sum(counts.values()) == SEEDS * k and counts.get("rejected") == SEEDS * k // 3
    with Store.open(ws / DB_FILE) as store:
        expanded = list(store.iter_samples(origin="expanded"))
        calls = store.agent_calls(round=1)
    assert len(expanded) == counts["kept"] == SEEDS * k - counts["rejected"]
    multi_turn = 0
    for s in expanded:
        assert s.parent_id in (ERROR_CALL.id, ERROR_TEXT.id, LABEL_FIXED.id) and s.round_added == 2
        assert s.split == "train" and s.messages[0].role == "system" and s.messages[-1].role == "user"
        if s.parent_id == ERROR_TEXT.id:  # a no-call seed: one user turn, a reply
            assert len(s.messages) == 2 and s.label.is_no_call and s.label.text
            continue
        parent = ERROR_CALL if s.parent_id == ERROR_CALL.id else LABEL_FIXED
        tools = {t.name for t in parent.tools}
        assert 1 <= len(s.label.calls) <= 2 and {c.name for c in s.label.calls} <= tools
        assert all(1 <= c.arguments.get("days", 1) <= 7 for c in s.label.calls if c.name == "get_weather")
        history = s.messages[1:-1]
        multi_turn += bool(history)
        for m in history:  # user, the assistant's calls, their results, the assistant's reply
            assert m.role in ("user", "assistant", "tool")
            assert m.role != "tool" or (m.name in tools and m.content and m.tool_call_id)
    assert multi_turn  # the scripted expander fills the history
    # Every expander call and every check is on record under its slot, with the seed as its sample.
    subjects = {(c["subject"], c["call_key"].split(".")[0]) for c in calls}
    for parent in (ERROR_CALL, ERROR_TEXT, LABEL_FIXED):
        for slot in range(k):
            assert {(f"expansion:{parent.id}:1:{slot}", key) for key in ("expand", "check")} <= subjects
    assert {c["agent"] for c in calls} == {"expander", "judge"} and all(c["sample_id"] for c in calls)
    asked = len(fake_openai.requests)
    assert _expand(ws, fake_openai) == counts and len(fake_openai.requests) == asked  # nothing asked twice


def test_the_prompt_shows_the_wrong_answer_and_the_judges_analysis(ws, fake_openai):
    fake_openai.responder = judging()
    _expand(ws, fake_openai)
    with Store.open(ws / DB_FILE) as store:
        (call,) = [c for c in store.agent_calls(subject=f"expansion:{ERROR_CALL.id}:1:0") if c["agent"] == "expander"]
        (fixed,) = [c for c in store.agent_calls(subject=f"expansion:{LABEL_FIXED.id}:1:0")
                    if c["agent"] == "expander"]
    prompt = call["prompt"]
    assert call["prompt_ref"] == "agents/expander.md" and call["status"] == "ok" and call["raw"]
    assert _section(prompt, "Its correct answer:") == answer_text(ERROR_CALL.label.calls, None)
    assert _section(prompt, "The wrong answer:") == 'call get_weather({"city": "Paris"})'
    assert _section(prompt, "What went wrong:") == ANALYSIS
    # A corrected sample: its corrected label is the correct answer, the label the judge rejected the wrong one.
    assert _section(fixed["prompt"], "Its correct answer:") == 'call get_weather({"city": "Oslo", "days": 2})'
    assert _section(fixed["prompt"], "The wrong answer:") == 'call get_weather({"city": "Oslo"})'
    assert _section(fixed["prompt"], "What went wrong:") == "the label leaves out days=2"


def test_a_multi_turn_multi_tool_expansion_becomes_a_sample_with_history():
    lyon = {"name": "local_time", "arguments": {"city": "Lyon"}, "result": '{"time": "09:10"}'}
    answer = {"history": [{"user": "What time is it in Lyon?", "calls": [lyon], "reply": "It is 09:10 in Lyon."}],
              "user": "And the weather there for the next 4 days, plus the time in Nice?",
              "calls": [{"name": "get_weather", "arguments": {"city": "Lyon", "days": 4}},
                        {"name": "local_time", "arguments": {"city": "Nice"}}]}
    jsonschema.validate(answer, expander_schema(ERROR_CALL, "complexity"))  # the decoding schema admits it
    s = new_sample(ERROR_CALL, answer, 1, "complexity")
    assert [m.role for m in s.messages] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert s.messages[0] == ERROR_CALL.messages[0]  # the system message lists the seed's tools
    asked, result = s.messages[2], s.messages[3]
    assert asked.tool_calls == [ToolCall(name="local_time", arguments={"city": "Lyon"})]
    assert (result.name, result.content, result.tool_call_id) == ("local_time", '{"time": "09:10"}', "call_2_0")
    assert s.label.calls == [weather(city="Lyon", days=4), ToolCall(name="local_time", arguments={"city": "Nice"})]
    assert s.origin == "expanded" and s.parent_id == ERROR_CALL.id and s.scenario == "single/complexity"
    assert s.round_added == 2 and [t.name for t in s.tools] == ["get_weather", "local_time"]


def test_an_expansion_with_an_unknown_tool_or_invalid_arguments_is_refused():
    def answer(*calls, user="Weather in Rome for a while?", history=()):
        return {"history": list(history), "user": user, "calls": list(calls)}

    rome = {"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}
    with pytest.raises(ModelOutputError, match="days"):
        new_sample(ERROR_CALL, answer({"name": "get_weather", "arguments": {"city": "Rome", "days": 10}}), 1, "values")
    with pytest.raises(ModelOutputError, match="not one of the tools"):
        new_sample(ERROR_CALL, answer({"name": "get_time", "arguments": {}}), 1, "values")
    with pytest.raises(ModelOutputError, match="history 1: local_time"):
        new_sample(ERROR_CALL, answer(rome, history=[{"user": "hi", "reply": "Hello.", "calls": [
            {"name": "local_time", "arguments": {"town": "Rome"}, "result": "{}"}]}]), 1, "values")
    with pytest.raises(ModelOutputError, match="empty"):
        new_sample(ERROR_CALL, answer(rome, user="   "), 1, "values")
    ok = new_sample(ERROR_CALL, answer(rome), 1, "values")
    assert ok.origin == "expanded" and ok.parent_id == ERROR_CALL.id and len(ok.messages) == 2


def test_the_schema_follows_the_seed():
    schema = expander_schema(ERROR_CALL, "values")
    assert schema["required"] == ["history", "user", "calls"] and schema["additionalProperties"] is False
    calls = schema["properties"]["calls"]
    assert (calls["minItems"], calls["maxItems"]) == (1, 2)  # the seed's one call, or one more
    items = calls["items"]["anyOf"]
    assert [i["properties"]["name"] for i in items] == [{"const": "get_weather"}, {"const": "local_time"}]
    assert items[0]["properties"]["arguments"]["required"] == ["city"]
    history = schema["properties"]["history"]
    assert (history["minItems"], history["maxItems"]) == (0, 2)
    assert expander_schema(ERROR_CALL, "complexity")["properties"]["history"]["minItems"] == 1
    assert history["items"]["properties"]["calls"]["items"]["anyOf"][1]["required"] == ["name", "arguments", "result"]
    assert expander_schema(ERROR_TEXT, "values")["required"] == ["user", "reply"]
    assert {dimension("p", 1, slot) for slot in range(4)} == set(DIMENSIONS)


def test_invalid_expansions_are_recorded_with_their_trace(ws, fake_openai):
    bad = {"history": [], "user": "What time is it in Lima now?", "calls": [{"name": "get_time", "arguments": {}}]}

    def respond(path: str, body: dict):
        if schema_name(body) == "expander":
            return 200, chat_reply(json.dumps(bad))  # fits no call of the seed's tools (nor the no-call form)
        return 200, chat_reply(json.dumps({"analysis": "checked", "correct": True}))

    fake_openai.responder = respond
    counts = _expand(ws, fake_openai, attempts=2)
    assert counts == {"invalid": SEEDS * 4}
    with Store.open(ws / DB_FILE) as store:
        (attempt,) = [e for e in store.expansions_of(ERROR_CALL.id) if e["slot"] == 0]
        calls = store.agent_calls(subject=f"expansion:{ERROR_CALL.id}:1:0")
    assert attempt["status"] == "invalid" and "does not match" in attempt["detail"]
    assert [(c["call_key"], c["status"]) for c in calls] == [("expand.a0", "error"), ("expand.a1", "error")]
    assert calls[-1]["error"] == attempt["detail"] and calls[0]["raw"] == json.dumps(bad)


def test_an_expansion_whose_reply_is_not_language_is_invalid_and_not_checked(ws, fake_openai):
    junk = {"user": "Any idea what the weather will be?", "reply": "f0-o3S7JQW-zZJL8EzbNqZJ"}
    calls = judging()

    def respond(path: str, body: dict):
        if schema_name(body) == "expander" and "reply" in body["response_format"]["json_schema"]["schema"]["required"]:
            return 200, chat_reply(json.dumps(junk))  # ERROR_TEXT's slots: a reply, and a junk one
        return calls(path, body)

    fake_openai.responder = respond
    counts = _expand(ws, fake_openai)
    assert counts == {"invalid": 4, "kept": (SEEDS - 1) * 4}
    with Store.open(ws / DB_FILE) as store:
        attempts = store.expansions_of(ERROR_TEXT.id)
        checks = [c for c in store.agent_calls(round=1) if c["sample_id"] == ERROR_TEXT.id and c["agent"] == "judge"]
    assert {a["status"] for a in attempts} == {"invalid"} and checks == []  # no judge asked about them
    assert all("a reply of the new sample is not language" in a["detail"] for a in attempts)


def test_a_killed_expansion_run_resumes_slot_by_slot(ws, fake_openai):
    config_responder = judging()
    n = {"requests": 0}

    def flaky(path, body):
        n["requests"] += 1
        return (503, {"error": {"message": "gone"}}) if n["requests"] > 5 else config_responder(path, body)

    fake_openai.responder = flaky
    with pytest.raises(ServingError):
        _expand(ws, fake_openai, concurrency=1, retries=0)
    with Store.open(ws / DB_FILE) as store:
        partial = store.expansion_counts(1)
        tried = store.expansion_slots(1)
    assert 1 <= sum(partial.values()) < SEEDS * 4
    fake_openai.responder = judging()
    before = len(fake_openai.requests)
    counts = _expand(ws, fake_openai)
    assert counts == {"kept": SEEDS * 4}
    retried = [body for _, body in fake_openai.requests[before:] if schema_name(body) == "expander"]
    assert len(retried) == SEEDS * 4 - len(tried)  # the slots already tried are not asked again
    with Store.open(ws / DB_FILE) as store:
        ids = [s.id for s in store.iter_samples(origin="expanded")]
    assert len(ids) == len(set(ids)) == SEEDS * 4


def test_a_refused_expander_request_is_an_invalid_expansion_and_the_round_goes_on(ws, fake_openai):
    """A server that refuses a request (HTTP 400, e.g. prompt plus answer longer than its context)
    fails that slot once -- the same request would be refused again -- and the other slots go on."""
    judge = judging()

    def respond(path: str, body: dict):
        if schema_name(body) == "expander" and "Weather in Paris" in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "maximum context length is 2048 tokens"}}
        return judge(path, body)

    fake_openai.responder = respond
    counts = _expand(ws, fake_openai, attempts=3)
    assert counts == {"invalid": 4, "kept": (SEEDS - 1) * 4}
    with Store.open(ws / DB_FILE) as store:
        (attempt,) = [e for e in store.expansions_of(ERROR_CALL.id) if e["slot"] == 0]
        calls = store.agent_calls(subject=f"expansion:{ERROR_CALL.id}:1:0")
    assert "maximum context length" in attempt["detail"]
    assert [(c["call_key"], c["status"], c["raw"]) for c in calls] == [("expand.a0", "error", None)]
