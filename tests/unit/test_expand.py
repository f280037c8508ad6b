"""Error-driven expansion against the scripted server: k slots per error sample, each new sample
validated and checked by the judge before it joins with its provenance; invalid and rejected
attempts are counted; a killed or repeated run neither re-asks nor duplicates."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from looptool.agents.expander import DIMENSIONS, dimension, expander_schema, new_sample
from looptool.config import DB_FILE, load_config
from looptool.graphs.expand import ExpandContext, expand_round
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec, Verdict
from looptool.serving.client import ModelOutputError, ServingError
from looptool.store import Store
from looptool.training.templates import system_message
from tests.fakes import chat_reply, json_schema_responder, schema_name

TOOL = ToolSpec(name="get_weather", description="Weather of a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city"]})


def _sample(user: str, label: Label) -> Sample:
    return Sample(messages=[system_message([TOOL]), Message(role="user", content=user)], tools=[TOOL], label=label,
                  scenario="single")


ERROR_CALL = _sample("Weather in Paris for 3 days?",
                     Label(calls=[ToolCall(name="get_weather", arguments={"city": "Paris", "days": 3})]))
ERROR_TEXT = _sample("What's the weather?", Label(text="Which city?"))
LABEL_FIXED = _sample("Weather in Oslo?", Label(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]))


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
        for s in (ERROR_CALL, ERROR_TEXT, LABEL_FIXED):
            store.upsert_sample(s)
        store.upsert_verdict(Verdict(sample_id=ERROR_CALL.id, round=1, verdict="PRED_WRONG"))
        store.upsert_verdict(Verdict(sample_id=ERROR_TEXT.id, round=1, verdict="BOTH_OK"))
        store.set_human_override(ERROR_TEXT.id, 1, "PRED_WRONG")  # a person's verdict counts
        store.upsert_verdict(Verdict(sample_id=LABEL_FIXED.id, round=1, verdict="LABEL_WRONG"))
    return workspace


def _expand(ws: Path, fake_openai, concurrency: int = 4, retries: int = 3) -> dict[str, int]:
    config = load_config(ws).model_copy(deep=True)
    config.loop.concurrency = concurrency
    endpoint = replace(fake_openai.endpoint, max_retries=retries)
    with Store.open(ws / DB_FILE) as store:
        ctx = ExpandContext(config, store, endpoint, endpoint, "2026-11-23")
        return asyncio.run(expand_round(ctx, 1))


def test_error_samples_are_expanded_with_provenance(ws, fake_openai):
    fake_openai.responder = judging(reject_every=3)
    counts = _expand(ws, fake_openai, concurrency=1)
    assert sum(counts.values()) == 6 and counts.get("rejected") == 2  # 2 error samples x 3 slots
    with Store.open(ws / DB_FILE) as store:
        expanded = list(store.iter_samples(origin="expanded"))
    assert len(expanded) == counts["kept"] == 4
    for s in expanded:
        assert s.parent_id in (ERROR_CALL.id, ERROR_TEXT.id) and s.round_added == 2 and s.split == "train"
        assert [t.name for t in s.tools] == ["get_weather"] and s.messages[-1].role == "user"
        if s.parent_id == ERROR_CALL.id:  # the same call structure, values valid for the schema
            (call,) = s.label.calls
            assert call.name == "get_weather" and 1 <= call.arguments.get("days", 1) <= 7
        else:
            assert s.label.is_no_call and s.label.text
    asked = len(fake_openai.requests)
    assert _expand(ws, fake_openai) == counts and len(fake_openai.requests) == asked  # nothing asked twice


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
    assert 1 <= sum(partial.values()) < 6
    fake_openai.responder = judging()
    counts = _expand(ws, fake_openai)
    assert counts == {"kept": 6}
    with Store.open(ws / DB_FILE) as store:
        ids = [s.id for s in store.iter_samples(origin="expanded")]
    assert len(ids) == len(set(ids)) == 6


def test_an_expansion_with_invalid_arguments_is_refused():
    with pytest.raises(ModelOutputError, match="days"):
        new_sample(ERROR_CALL, {"user": "Weather in Rome for ten days?", "call_1": {"city": "Rome", "days": 10}}, 1,
                   "values")
    with pytest.raises(ModelOutputError, match="empty"):
        new_sample(ERROR_CALL, {"user": "   ", "call_1": {"city": "Rome"}}, 1, "values")
    ok = new_sample(ERROR_CALL, {"user": "Rome weather, next 2 days", "call_1": {"city": "Rome", "days": 2}}, 1, "values")
    assert ok.origin == "expanded" and ok.parent_id == ERROR_CALL.id and ok.scenario == "single/values"
    schema = expander_schema(ERROR_CALL)
    assert schema["required"] == ["user", "call_1"] and schema["properties"]["call_1"]["required"] == ["city"]
    assert expander_schema(ERROR_TEXT)["required"] == ["user", "reply"]
    assert {dimension("p", 1, slot) for slot in range(4)} == set(DIMENSIONS)
