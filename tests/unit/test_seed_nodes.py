"""The seed graph's routing and its vote node, each called alone with a state and a SeedContext
given as LangGraph's runtime, the way the graph calls them (whole dialogues run in test_seed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from langgraph.types import Send

from looptool.config import SeedConfig
from looptool.schema import Dialogue, Label, Message, ToolCall
from looptool.seed.graph import after_tool, after_user, after_verify, after_vote, vote
from looptool.seed.state import SeedContext
from looptool.serving.client import Endpoint
from looptool.store import Store

DIALOGUE = "d-nodes"


@pytest.fixture
def store(tmp_path: Path):
    with Store.create(tmp_path / "looptool.db") as store:
        store.upsert_dialogue(Dialogue(id=DIALOGUE, status="running", thread_id=DIALOGUE,
                                       messages=[Message(role="user", content="Weather in Oslo?")]))
        yield store


def runtime(store: Store, *, judge: Endpoint | None = None, guidance: str = "hint") -> Runtime[SeedContext]:
    return Runtime(context=SeedContext(store=store, config=SeedConfig(), endpoints={}, guidance=guidance,  # type: ignore[arg-type]
                                       tool_records=[], seed=0, count_tokens=len, judge=judge))


def candidate(k: int, label: Label | None, error: str | None = None) -> dict:
    return {"k": k, "label": None if label is None else label.model_dump(), "error": error,
            "usage": {"model": "m", "prompt_tokens": 10, "completion_tokens": 3}}


WEATHER = Label(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})])
FORECAST = Label(calls=[ToolCall(name="get_forecast", arguments={"city": "Oslo", "days": 2})])
TURN = {"dialogue_id": DIALOGUE, "n_turns": 2, "n_messages": 1, "turn": 1, "action": 0}


def test_after_verify_asks_the_judge_only_when_it_checks_and_the_dialogue_stands(store):
    judge = Endpoint(base_url="http://judge.invalid/v1", model="j")
    assert after_verify({"outcome": ""}, runtime(store)) == "finish"  # the judge's check is off
    assert after_verify({"outcome": ""}, runtime(store, judge=judge)) == "judge"
    assert after_verify({"outcome": "dropped", "error": "x"}, runtime(store, judge=judge)) == "finish"


def test_two_assistant_samples_are_sent_after_a_user_turn(store):
    sends = after_user(TURN, runtime(store))
    assert sends == [Send("assistant", {"dialogue_id": DIALOGUE, "n_messages": 1, "turn": 1, "action": 0, "k": k})
                     for k in (0, 1)]
    assert after_user({**TURN, "outcome": "dropped"}, runtime(store)) == "finish"


def test_vote_accepts_two_samples_that_agree_and_stores_the_turn(store):
    out = vote({**TURN, "candidates": [candidate(1, WEATHER), candidate(0, WEATHER)]}, runtime(store))
    assert out == {"n_messages": 2, "action": 1, "candidates": None, "vote": "accepted", "last": "calls"}
    rows = store.message_rows(DIALOGUE)
    assert len(rows) == 2 and rows[1]["message"].tool_calls == WEATHER.calls and not rows[1]["masked"]
    assert rows[1]["model"] == "m" and rows[1]["completion_tokens"] == 3


def test_vote_asks_a_third_sample_when_two_disagree_and_masks_a_turn_without_majority(store):
    state = {**TURN, "candidates": [candidate(0, WEATHER), candidate(1, FORECAST)]}
    assert vote(state, runtime(store)) == {"vote": "third"}
    assert len(store.messages(DIALOGUE)) == 1  # nothing stored yet
    assert after_vote({**state, "vote": "third"}, runtime(store)) == [
        Send("assistant", {"dialogue_id": DIALOGUE, "n_messages": 1, "turn": 1, "action": 0, "k": 2})]
    text = Label(text="Which city?")
    out = vote({**TURN, "candidates": [candidate(0, WEATHER), candidate(1, FORECAST), candidate(2, text)]},
               runtime(store))
    assert out["vote"] == "masked" and out["last"] == "calls"  # the first sample is kept, masked
    assert store.message_rows(DIALOGUE)[1]["masked"]


def test_vote_drops_the_dialogue_when_a_sample_failed(store):
    out = vote({**TURN, "candidates": [candidate(0, WEATHER), candidate(1, None, "no valid answer")]}, runtime(store))
    assert out == {"outcome": "dropped", "error": "no valid answer", "candidates": None}


def test_after_vote_and_after_tool_route_by_the_accepted_turn_and_the_budget(store):
    rt = runtime(store)
    budget = rt.context.config.max_messages
    accepted = {**TURN, "vote": "accepted", "n_messages": 2, "action": 1}
    assert after_vote({**accepted, "last": "calls"}, rt) == "tool"
    assert after_vote({**accepted, "last": "text"}, rt) == "user"  # a user turn of the plan is left
    assert after_vote({**accepted, "last": "text", "turn": 2}, rt) == "verify"  # the plan is done
    assert after_vote({**accepted, "last": "calls", "n_messages": budget}, rt) == "verify"  # the budget is spent
    assert after_vote({**accepted, "outcome": "dropped"}, rt) == "finish"
    assert after_tool({**accepted, "n_messages": 3}, rt) == [
        Send("assistant", {"dialogue_id": DIALOGUE, "n_messages": 3, "turn": 1, "action": 1, "k": k}) for k in (0, 1)]
    assert after_tool({**accepted, "n_messages": budget}, rt) == "verify"
    assert after_tool({**accepted, "outcome": "dropped"}, rt) == "finish"
