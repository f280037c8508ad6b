"""The BFCL-v3 multi-turn inference loop (no model): its control flow with a scripted model, and a
run through the suite against a scripted OpenAI-compatible server (storing, resuming, refusals)."""

from __future__ import annotations

import asyncio
import json

import pytest

from looptool.calls import format_calls
from looptool.config import DB_FILE, load_config
from looptool.eval import bfcl_suite
from looptool.eval.bfcl_multi_turn import FORCE_TERMINATED
from looptool.eval.bfcl_multi_turn_data import load_multi_turn_entries
from looptool.eval.bfcl_multi_turn_exec import BackendSession, ground_truth_call
from looptool.eval.bfcl_multi_turn_infer import ADDITIONAL_FUNCTION_MESSAGE, MAXIMUM_STEP_LIMIT, converse
from looptool.schema import Message, ToolCall, ToolSpec
from looptool.serving.client import Completion, RequestRejected
from looptool.serving.target import EvalTarget
from looptool.store import Store
from tests.fakes import chat_reply

NO_CALL = "Done."


def entry(entry_id: str):
    return load_multi_turn_entries([entry_id])[entry_id]


def completion(text: str) -> Completion:
    return Completion(text, "m", 1.0, 10, 2, False)


def call_text(*calls: ToolCall) -> str:
    return format_calls(list(calls), "tool_call_tags")


class ScriptedModel:
    """An `AskStep` that answers from `reply(history, tools)` and records what it was shown."""

    def __init__(self, reply):
        self.reply = reply
        self.seen: list[tuple[list[Message], list[ToolSpec]]] = []

    async def __call__(self, history, tools):
        self.seen.append((history, tools))
        return completion(self.reply(history, tools))


def run(entry_, model):
    return asyncio.run(converse(entry_, model))


def test_a_step_without_calls_ends_the_turn_and_results_come_back_as_tool_messages():
    e = entry("multi_turn_base_1")
    first = [ToolCall(name="ls", arguments={"a": True}), ToolCall(name="pwd", arguments={})]

    def reply(history, tools):
        return call_text(*first) if history[-1].role == "user" else NO_CALL

    model = ScriptedModel(reply)
    transcript = run(e, model)
    assert transcript.turns == [[call_text(*first), NO_CALL]] * len(e.turns)
    assert len(model.seen) == 2 * len(e.turns) and not transcript.force_terminated
    # The second request of turn 0 holds the user text, the step's calls, and one tool message per
    # result, in call order, as the calls' results on fresh instances.
    history, _ = model.seen[1]
    expected = BackendSession(e).execute_all(first)
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool"]
    assert history[0].content == e.turns[0][0]["content"] and history[1].tool_calls == first
    assert [(m.name, m.content) for m in history[2:]] == [("ls", expected[0]), ("pwd", expected[1])]
    # The next turn sees the whole conversation so far: turn 0's plain-text step included.
    history, _ = model.seen[2]
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert history[4].content == NO_CALL and history[5].content == e.turns[1][0]["content"]


def test_the_ground_truth_asked_turn_by_turn_passes():
    e = entry("multi_turn_base_0")
    truth = [[ground_truth_call(BackendSession(e), text) for text in turn] for turn in e.ground_truth]
    turn_of_user_text = {t[0]["content"]: i for i, t in enumerate(e.turns)}

    def reply(history, tools):
        if history[-1].role != "user":
            return NO_CALL
        return call_text(*truth[turn_of_user_text[history[-1].content]])

    transcript = run(e, ScriptedModel(reply))
    assert bfcl_suite.score_multi_turn(e, transcript.as_completion().content).passed
    assert transcript.as_completion().completion_tokens == 2 * 2 * len(e.turns)


def test_more_than_twenty_steps_with_calls_stop_the_entry():
    e = entry("multi_turn_base_1")
    model = ScriptedModel(lambda history, tools: call_text(ToolCall(name="pwd", arguments={})))
    transcript = run(e, model)
    # As BFCL: the 21st step with calls still runs, then the entry stops; later turns are missing.
    assert transcript.force_terminated and len(transcript.turns) == 1
    assert len(transcript.turns[0]) == MAXIMUM_STEP_LIMIT + 1 == len(model.seen)
    scored = bfcl_suite.score_multi_turn(e, transcript.as_completion().content)
    assert not scored.passed and scored.error_type == FORCE_TERMINATED


def test_twenty_steps_with_calls_are_allowed():
    e = entry("multi_turn_base_1")
    count = {"n": 0}

    def reply(history, tools):
        count["n"] += 1
        return call_text(ToolCall(name="pwd", arguments={})) if count["n"] <= MAXIMUM_STEP_LIMIT else NO_CALL

    transcript = run(e, ScriptedModel(reply))
    assert not transcript.force_terminated and len(transcript.turns) == len(e.turns)
    assert len(transcript.turns[0]) == MAXIMUM_STEP_LIMIT + 1


def test_miss_func_offers_the_withheld_functions_at_their_turn_with_bfcls_message():
    e = entry("multi_turn_miss_func_0")
    ((turn, names),) = e.missed_function.items()
    assert names == ["sort"] and e.turns[turn] == []
    model = ScriptedModel(lambda history, tools: NO_CALL)
    transcript = run(e, model)
    assert len(transcript.turns) == len(e.turns) and len(model.seen) == len(e.turns)
    offered = [{t.name for t in tools} for _, tools in model.seen]
    assert all("sort" not in names for names in offered[:turn]) and all("sort" in names for names in offered[turn:])
    assert offered[turn] - offered[turn - 1] == {"sort"}
    history, _ = model.seen[turn]
    assert history[-1] == Message(role="user", content=ADDITIONAL_FUNCTION_MESSAGE)
    assert ADDITIONAL_FUNCTION_MESSAGE == "I have updated some more functions you can choose from. What about now?"


def test_every_conversation_starts_from_fresh_state():
    e = entry("multi_turn_base_1")
    make = ToolCall(name="mkdir", arguments={"dir_name": "fresh_dir"})
    model = ScriptedModel(lambda history, tools: call_text(make) if history[-1].role == "user" else NO_CALL)
    run(e, model)
    results = [h[-1].content for h, _ in model.seen[1::2]]  # each turn's mkdir result
    assert results[0] == "None" and "File exists" in results[1]  # the same instances all turns
    again = ScriptedModel(model.reply)
    run(e, again)
    assert again.seen[1][0][-1].content == results[0]  # a new conversation: new instances


def test_a_refused_step_fails_the_conversation():
    async def refuse(history, tools):
        raise RequestRejected("request refused: maximum context length is 2048 tokens")

    with pytest.raises(RequestRejected):
        asyncio.run(converse(entry("multi_turn_long_context_0"), refuse))


# -- through the suite, against a scripted server ----------------------------------------------------


@pytest.fixture
def policy_ws(workspace, fake_openai):
    (workspace / "looptool.toml").write_text(
        f"[policy]\nkind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\n")
    return workspace


def calls_then_text(refuse_category: str | None = None):
    """A server that answers a user message with one call and a tool result with plain text; it
    refuses (as vLLM does a prompt longer than its context) every request of one category."""

    def respond(path, body):
        messages = body["messages"]
        if refuse_category and refuse_category in json.dumps(messages):
            return 400, {"error": {"message": "This model's maximum context length is 2048 tokens",
                                   "type": "BadRequestError"}}
        if messages[-1]["role"] == "tool":
            return 200, chat_reply(NO_CALL)
        return 200, chat_reply(call_text(ToolCall(name="pwd", arguments={})))

    return respond


@pytest.mark.slow
def test_run_bfcl_asks_multi_turn_entries_stores_and_resumes(policy_ws, fake_openai):
    config = load_config(policy_ws)
    fake_openai.responder = calls_then_text()
    target = EvalTarget(fake_openai.endpoint, "m", 0, None)
    categories = bfcl_suite.parse_categories("multi_turn_base,multi_turn_miss_func")
    run_id, progress = bfcl_suite.run_bfcl(policy_ws, config, target, categories, 2)
    entries = load_multi_turn_entries(["multi_turn_base_0", "multi_turn_base_1", "multi_turn_miss_func_0",
                                       "multi_turn_miss_func_1"])
    turns = sum(len(e.turns) for e in entries.values())
    assert (progress.done, progress.rejected) == (4, 0) and len(fake_openai.requests) == 2 * turns
    # Each step is the whole conversation so far: the policy's system prompt with the tools, the
    # user turns, the assistant's calls in the call format and their results as tool messages.
    # (Entries are in flight together, so which entry a request belongs to varies.)
    second = next(body["messages"] for _, body in fake_openai.requests if len(body["messages"]) == 4)
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool"]
    assert '"name":"pwd"' in second[0]["content"] and "<tool_call>" in second[2]["content"]
    assert list(json.loads(second[3]["content"])) == ["current_working_directory"]
    with Store.open(policy_ws / DB_FILE) as store:
        rows = {r["entry_id"]: r for r in store.eval_results(run_id)}
        scores = store.eval_scores(run_id)
    assert set(rows) == set(entries) and {c: s["total"] for c, s in scores.items()} == {
        "multi_turn_base": 2, "multi_turn_miss_func": 2}
    row = rows["multi_turn_base_1"]
    assert json.loads(row["output"]) == [[call_text(ToolCall(name="pwd", arguments={})), NO_CALL]] * 4
    assert not row["passed"] and row["error_type"].startswith("multi_turn:")
    assert row["decoded"] == [[[{"pwd": {}}]]] * 4 and row["completion_tokens"] == 8 and row["latency_ms"] > 0

    # Asked again: nothing is asked; a larger limit asks only the new entries.
    _, again = bfcl_suite.run_bfcl(policy_ws, config, target, categories, 2)
    assert (again.already, again.done, len(fake_openai.requests)) == (4, 0, 2 * turns)
    _, more = bfcl_suite.run_bfcl(policy_ws, config, target, ["multi_turn_base"], 3)
    assert (more.already, more.done) == (2, 1)


def test_a_refused_conversation_fails_its_entry_and_the_run_goes_on(policy_ws, fake_openai):
    config = load_config(policy_ws)
    fake_openai.responder = calls_then_text(refuse_category=entry("multi_turn_base_1").turns[0][0]["content"])
    target = EvalTarget(fake_openai.endpoint, "m", 0, None)
    run_id, progress = bfcl_suite.run_bfcl(policy_ws, config, target, ["multi_turn_base"], 2)
    assert (progress.done, progress.rejected) == (2, 1)
    with Store.open(policy_ws / DB_FILE) as store:
        rows = {r["entry_id"]: r for r in store.eval_results(run_id)}
        assert store.eval_scores(run_id)["multi_turn_base"]["errors"] == 1
    refused = rows["multi_turn_base_1"]
    assert refused["error_type"] == "inference_error:request_rejected" and refused["output"] is None
    assert "maximum context length" in refused["error"]
    assert rows["multi_turn_base_0"]["output"] is not None


def test_all_categories_include_the_multi_turn_ones():
    from looptool.config import ConfigError, LoopConfig

    chosen = bfcl_suite.parse_categories("all")
    assert len(chosen) == 17 and chosen[-4:] == ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                                                 "multi_turn_long_context"]
    assert bfcl_suite.parse_categories("simple,multi_turn_base") == ["simple", "multi_turn_base"]
    with pytest.raises(ConfigError, match="unknown BFCL category 'multi_turn'"):
        bfcl_suite.parse_categories("multi_turn")
    assert LoopConfig(eval_bfcl_categories="simple,multi_turn_long_context").eval_bfcl_categories
    selected = bfcl_suite.select_entries(["simple", "multi_turn_miss_param"], 2)
    assert [e.id for e in selected] == ["simple_0", "simple_1", "multi_turn_miss_param_0", "multi_turn_miss_param_1"]
