"""BFCL-v3 multi-turn: the shipped data, the backends, the executor and the checker (no model).

The oracle tests render each entry's ground truth as a model's output (each call a `<tool_call>`
block, one step per turn) and expect it to pass; the mutation table changes one thing in such an
output and expects the failure the official checker gives, for the right reason.
"""

from __future__ import annotations

import copy
import json

import pytest

from looptool.calls import format_calls
from looptool.eval.bfcl_backends import CLASS_MODULES, backend_class
from looptool.eval.bfcl_backends import long_context as fixtures
from looptool.eval.bfcl_data import MULTI_TURN_CATEGORIES, default_data_dir
from looptool.eval.bfcl_multi_turn import (
    EMPTY_TURN,
    FORCE_TERMINATED,
    RESPONSE_MISMATCH,
    STATE_MISMATCH,
    check_multi_turn,
    decode_step,
)
from looptool.eval.bfcl_multi_turn_data import (
    FUNC_DOC_FILES,
    function_docs,
    is_multi_turn_id,
    load_multi_turn_category,
    load_multi_turn_entries,
    multi_turn_category_of,
)
from looptool.eval.bfcl_multi_turn_exec import (
    BackendSession,
    GroundTruthError,
    ground_truth_call,
    parse_ground_truth_call,
)
from looptool.schema import ToolCall

NO_CALL = "I cannot do that with the functions I have."


def entry(entry_id: str):
    return load_multi_turn_entries([entry_id])[entry_id]


def truth_calls(e) -> list[list[ToolCall]]:
    """The ground truth as keyword calls, per turn."""
    session = BackendSession(e)
    return [[ground_truth_call(session, text) for text in turn] for turn in e.ground_truth]


def render(turns: list[list[ToolCall]]) -> list[list[str]]:
    """Per turn one step holding all its calls; a turn without calls is one plain-text step."""
    return [[format_calls(calls, "tool_call_tags")] if calls else [NO_CALL] for calls in turns]


def oracle_failures(entries) -> dict[str, str]:
    failures = {}
    for e in entries:
        result = check_multi_turn(e, render(truth_calls(e)))
        if not result.valid:
            failures[e.id] = f"{result.error_type}: {result.error}"
    return failures


# -- data ------------------------------------------------------------------------------------------


def test_multi_turn_data_ships_with_the_package():
    for category in MULTI_TURN_CATEGORIES:
        entries = load_multi_turn_category(category)
        assert [e.id for e in entries] == [f"{category}_{i}" for i in range(200)]
        assert all(e.category == category and multi_turn_category_of(e.id) == category for e in entries)
        assert all(set(e.involved_classes) <= set(CLASS_MODULES) for e in entries)
        assert all(e.long_context == (category == "multi_turn_long_context") for e in entries)
        # Only multi_turn_base_154 has more ground-truth turns than questions (see below).
        assert [e.id for e in entries if len(e.turns) != len(e.ground_truth)] == (
            ["multi_turn_base_154"] if category == "multi_turn_base" else [])
    folder = default_data_dir()
    assert sorted(p.name for p in (folder / "multi_turn_func_doc").iterdir()) == sorted(FUNC_DOC_FILES.values())
    assert "multi_turn_func_doc" in (folder / "SOURCE_AND_LICENSE.md").read_text()


def test_function_docs_follow_the_involved_classes_and_miss_func_withholds_some():
    base = entry("multi_turn_base_0")
    assert base.involved_classes == ["TwitterAPI", "GorillaFileSystem"]
    assert base.functions == function_docs("TwitterAPI") + function_docs("GorillaFileSystem")
    assert base.functions_added == {}
    missing = entry("multi_turn_miss_func_0")
    assert missing.turns[3] == []  # the turn where the withheld function arrives has no user text
    assert missing.missed_function == {3: ["sort"]} and base.missed_function == {}
    names = lambda docs: {d["name"] for d in docs}  # noqa: E731
    assert "sort" not in names(missing.functions) and "sort" not in names(missing.functions_at(2))
    assert names(missing.functions_at(3)) == names(base.functions)


@pytest.mark.parametrize("bad", ["multi_turn_base", "multi_turn_composite_0", "simple_0", "multi_turn_base_x"])
def test_multi_turn_ids_are_checked(bad):
    with pytest.raises(ValueError, match="multi-turn entry id"):
        multi_turn_category_of(bad)


def test_multi_turn_ids_route_by_prefix():
    assert is_multi_turn_id("multi_turn_long_context_3") and not is_multi_turn_id("simple_0")
    assert load_multi_turn_entries(["multi_turn_base_1", "multi_turn_base_999"]).keys() == {"multi_turn_base_1"}


# -- backends and executor ---------------------------------------------------------------------------


def test_backends_ship_with_their_license():
    for name in CLASS_MODULES:
        assert backend_class(name).__name__ == name
    folder = default_data_dir().parent.parent / "bfcl_backends"
    assert (folder / "LICENSE-Apache-2.0.txt").is_file()
    assert "Apache" in (folder / "SOURCE_AND_LICENSE.md").read_text()
    with pytest.raises(ValueError, match="unknown BFCL backend class 'Nope'"):
        backend_class("Nope")


def test_results_and_errors_are_strings_as_bfcl_records_them():
    session = BackendSession(entry("multi_turn_base_0"))
    assert session.execute(ToolCall(name="pwd")) == json.dumps({"current_working_directory": "/workspace"})
    assert session.execute(ToolCall(name="cd", arguments={"nope": 1})) == (
        "Error during execution: GorillaFileSystem.cd() got an unexpected keyword argument 'nope'")
    assert session.execute(ToolCall(name="rm_rf")) == "Error during execution: name 'rm_rf' is not defined"
    assert session.execute(ToolCall(name="os.system", arguments={"command": "true"})) == (
        "Error during execution: name 'os' is not defined")  # a dotted name reaches nothing
    assert session.execute(ToolCall(name="exit")) == "Error during execution: Function call exit is not allowed."
    # TwitterAPI is involved too: its methods are in the same table.
    assert "Error" not in session.execute(ToolCall(name="get_user_stats", arguments={"username": "analyst_pro"}))


def test_math_calls_cannot_stall_scoring_or_leak_precision():
    import decimal

    import mpmath

    e = next(e for e in load_multi_turn_category("multi_turn_base") if "MathAPI" in e.involved_classes)
    session = BackendSession(e)
    power = lambda **args: session.execute(ToolCall(name="power", arguments=args))  # noqa: E731
    too_long = ("Error during execution: Exceeds the limit (4300 digits) for integer string conversion; "
                "use sys.set_int_max_str_digits() to increase the limit")
    assert power(base=10, exponent=4299).startswith('{"result": 1000')
    assert power(base=10, exponent=4300) == too_long  # computed, then refused when printed, as in BFCL
    assert power(base=3, exponent=10**15) == too_long  # not computed at all
    assert session.execute(ToolCall(name="logarithm", arguments={"value": 8, "base": 2, "precision": 10**9})) == (
        "Error during execution: precision 1000000000 is above the 10000 digits this scorer computes")
    digits, context = mpmath.mp.dps, decimal.getcontext().prec
    assert session.execute(ToolCall(name="logarithm", arguments={"value": 8, "base": 2, "precision": 50})) == (
        "{'result': mpf('3.0')}")  # not JSON-serialisable: str() of the dict, as in BFCL
    assert "1.41421356237309504880168872420969807857" in session.execute(
        ToolCall(name="square_root", arguments={"number": 2, "precision": 40}))
    assert (mpmath.mp.dps, decimal.getcontext().prec) == (digits, context)


def test_ground_truth_strings_are_read_as_literals_with_positional_arguments():
    assert parse_ground_truth_call("sort('final_report.pdf')") == ("sort", ("final_report.pdf",), {})
    assert parse_ground_truth_call("mean(numbers=[1, -2.5])") == ("mean", (), {"numbers": [1, -2.5]})
    for bad in ["__import__('os').system('x')", "f(x=open('y'))", "f(**k)", "x = 1", "f(x="]:
        with pytest.raises(GroundTruthError):
            parse_ground_truth_call(bad)
    session = BackendSession(entry("multi_turn_base_0"))
    assert ground_truth_call(session, "sort('a.txt')") == ToolCall(name="sort", arguments={"file_name": "a.txt"})
    with pytest.raises(GroundTruthError, match="does not fit sort"):
        ground_truth_call(session, "sort('a.txt', 'b.txt')")


def test_every_session_starts_from_fresh_state_even_after_fixture_mutation():
    e = next(e for e in load_multi_turn_category("multi_turn_long_context") if "TravelAPI" in e.involved_classes)
    card = next(iter(fixtures.CREDIT_CARD_EXTENSION))
    first = BackendSession(e)
    shared = first.instances["TravelAPI"].credit_card_list[card]
    balance = shared["balance"]
    shared["balance"] = -1.0  # a backend method mutating a card it got from the fixtures
    assert fixtures.CREDIT_CARD_EXTENSION[card]["balance"] == -1.0  # the leak a reset must undo
    assert BackendSession(e, reset_fixtures=False).instances["TravelAPI"].credit_card_list[card]["balance"] == -1.0
    again = BackendSession(e)
    assert again.instances["TravelAPI"].credit_card_list[card]["balance"] == balance
    assert first.instances["TravelAPI"].credit_card_list[card]["balance"] == -1.0  # old sessions keep theirs


def test_scoring_one_id_twice_in_one_process_gives_the_same_verdict():
    e = entry("multi_turn_base_0")
    good, bad = render(truth_calls(e)), render(truth_calls(e)[:-1] + [[]])
    verdicts = [check_multi_turn(e, output).valid for output in (good, bad, good, bad)]
    assert verdicts == [True, False, True, False]


# -- decoding steps ----------------------------------------------------------------------------------


def test_a_step_without_calls_or_with_any_bad_block_contributes_nothing():
    good = '<tool_call>\n{"name": "pwd", "arguments": {}}\n</tool_call>'
    assert decode_step(good) == [ToolCall(name="pwd")]
    assert decode_step("Sure, done.") == []
    assert decode_step(good + '\n<tool_call>\n{"name": "ls", "arguments": {\n</tool_call>') == []
    assert decode_step('<tool_call>\n{"name": "ls"}\n</tool_call>') == []  # BFCL's decoder raises; the step is skipped
    assert decode_step('<tool_call>{"name": "pwd", "arguments": {}}</tool_call>') == []  # one line: not a block
    # As BFCL's Qwen FC reading: keys besides name and arguments are ignored.
    assert decode_step('<tool_call>\n{"name": "ls", "arguments": {"a": true}, "bogus": 1}\n</tool_call>') == [
        ToolCall(name="ls", arguments={"a": True})]


# -- oracle ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_oracle_outputs_pass_on_all_800_entries():
    # About a second of CPU: the whole set stays in the fast tests.
    entries = [e for c in MULTI_TURN_CATEGORIES for e in load_multi_turn_category(c)]
    assert len(entries) == 800
    assert oracle_failures(entries) == {}


def test_multi_turn_base_154_cannot_pass_a_run_that_answers_each_question():
    # 5 questions but 6 ground-truth turns: an inference run answers 5 turns, and the turn count
    # is checked first. (The oracle passes only because it is rendered per ground-truth turn.)
    e = entry("multi_turn_base_154")
    assert (len(e.turns), len(e.ground_truth)) == (5, 6)
    result = check_multi_turn(e, render(truth_calls(e))[:5])
    assert (result.valid, result.error_type) == (False, FORCE_TERMINATED)
    assert result.error == "the answer has 5 turns, the ground truth 6"


# -- mutations ---------------------------------------------------------------------------------------


def _edit(entry_id: str, change) -> list[list[ToolCall]]:
    turns = copy.deepcopy(truth_calls(entry(entry_id)))
    change(turns)
    return turns


def _set(turns, t, i, name, **arguments):
    turns[t][i] = ToolCall(name=name, arguments=arguments)


def _swap(turns, t, i, j):
    turns[t][i], turns[t][j] = turns[t][j], turns[t][i]


# multi_turn_base_0 (file system): turn 0 cd/mkdir/mv, turn 1 cd/grep, turn 2 sort, turn 3 cd/mv/cd/diff.
# multi_turn_base_1: turn 3 is tail(file_name='log.txt', lines=20) on a five-line file.
MUTATIONS = {
    "wrong value": ("multi_turn_base_0", lambda t: _set(t, 0, 1, "mkdir", dir_name="tmp"), STATE_MISMATCH,
                    "turn 0: GorillaFileSystem state differs from the ground truth in root.contents['document']"
                    ".contents['tmp']"),
    "dropped state-changing call": ("multi_turn_base_0", lambda t: t[0].pop(1), STATE_MISMATCH,
                                    "root.contents['document'].contents['temp'] (model '<<File: temp"),
    "dropped read call": ("multi_turn_base_0", lambda t: t[1].pop(1), RESPONSE_MISMATCH,
                          "turn 1: 1 ground-truth result(s) not among the model's results so far, "
                          "e.g. '{\"matching_lines\""),
    "extra state-changing call": ("multi_turn_base_0", lambda t: t[0].append(ToolCall(name="touch", arguments={
                                  "file_name": "x.txt"})), STATE_MISMATCH, ".contents['x.txt'] (model '<<File: x.txt"),
    "swapped order that matters": ("multi_turn_base_0", lambda t: _swap(t, 0, 1, 2), STATE_MISMATCH,
                                   "turn 0: GorillaFileSystem state differs"),
    "empty turn": ("multi_turn_base_0", lambda t: t[2].clear(), EMPTY_TURN,
                   "turn 2: the model made no call; the ground truth makes 1"),
    "extra parameter": ("multi_turn_base_0", lambda t: _set(t, 1, 1, "grep", file_name="final_report.pdf",
                                                            pattern="budget analysis", ignore_case=True),
                        RESPONSE_MISMATCH, "Error during execution: GorillaFileSystem.grep() got an unexpected "
                                           "keyword argument 'ignore_case'"),
    "missing parameter": ("multi_turn_base_0", lambda t: _set(t, 1, 1, "grep", file_name="final_report.pdf"),
                          RESPONSE_MISMATCH, "missing 1 required positional argument: 'pattern'"),
    "wrong type": ("multi_turn_base_1", lambda t: _set(t, 3, 0, "tail", file_name="log.txt", lines="20"),
                   RESPONSE_MISMATCH, "turn 3: 1 ground-truth result(s) not among the model's results so far"),
    "missing turn": ("multi_turn_base_0", lambda t: t.pop(), FORCE_TERMINATED,
                     "the answer has 3 turns, the ground truth 4"),
    "call in a turn meant to wait": ("multi_turn_miss_func_0", lambda t: t[2].append(ToolCall(
                                     name="touch", arguments={"file_name": "early.txt"})), STATE_MISMATCH,
                                     "turn 3: GorillaFileSystem state differs"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_mutated_oracle_fails_for_the_right_reason(name):
    entry_id, change, error_type, reason = MUTATIONS[name]
    result = check_multi_turn(entry(entry_id), render(_edit(entry_id, change)))
    assert (result.valid, result.error_type) == (False, error_type), result
    assert reason in result.error, result.error


def test_changes_the_official_checker_lets_pass():
    # Calls run in any order within a turn when they do not interact (results are a multiset).
    reordered = render(_edit("multi_turn_base_50", lambda t: t[0].reverse()))
    assert check_multi_turn(entry("multi_turn_base_50"), reordered).valid
    # A wrong argument that does not change a result passes: tail of 21 lines of a 5-line file.
    assert check_multi_turn(entry("multi_turn_base_1"), render(
        _edit("multi_turn_base_1", lambda t: _set(t, 3, 0, "tail", file_name="log.txt", lines=21)))).valid
    # Steps may split a turn's calls, with plain text between them; results of earlier turns count.
    e = entry("multi_turn_base_0")
    calls = truth_calls(e)
    early = [calls[0] + calls[1], [ToolCall(name="ls")], calls[2], calls[3]]  # turn 1's grep done in turn 0
    one_call_per_step = [[format_calls([c], "tool_call_tags") for c in turn] + ["Done."] for turn in early]
    assert check_multi_turn(e, one_call_per_step).valid
    # A bad block spoils only its own step.
    bad_step = '<tool_call>\n{"name": "cd", "arguments": {"folder": \n</tool_call>'
    output = render(calls)
    output[2] = [bad_step, *output[2]]
    assert check_multi_turn(e, output).valid
    output[2] = [bad_step]
    assert check_multi_turn(e, output).error_type == EMPTY_TURN


# -- outputs files -----------------------------------------------------------------------------------


def _write(tmp_path, rows) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_outputs_file_mixes_single_and_multi_turn_lines(tmp_path, runner):
    from looptool.cli import app

    good = render(truth_calls(entry("multi_turn_base_0")))
    wrong = render(_edit("multi_turn_base_1", lambda t: t[1].pop()))
    path = _write(tmp_path, [
        {"id": "multi_turn_base_1", "output": wrong},
        {"id": "simple_0", "output": '<tool_call>\n{"name": "calculate_triangle_area", "arguments": '
                                     '{"base": 10, "height": 5}}\n</tool_call>'},
        {"id": "multi_turn_base_0", "output": good},
        {"id": "multi_turn_miss_func_0", "output": [["I will do it."]]},  # 1 turn of 5
    ])
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", path, "--json", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [(e["id"], e["pass"]) for e in doc["entries"]] == [
        ("simple_0", True), ("multi_turn_base_0", True), ("multi_turn_base_1", False),
        ("multi_turn_miss_func_0", False)]
    by_id = {e["id"]: e for e in doc["entries"]}
    assert by_id["multi_turn_base_1"]["error_type"] == STATE_MISMATCH
    assert by_id["multi_turn_miss_func_0"]["error"] == "the answer has 1 turns, the ground truth 5"
    cats = doc["categories"]
    assert (cats["multi_turn_base"]["passed"], cats["multi_turn_base"]["total"], cats["multi_turn_base"]["size"]) == (
        1, 2, 200)
    assert doc["groups"]["multi_turn"]["accuracy"] == pytest.approx((0.5 + 0.0) / 2)
    assert doc["groups"]["multi_turn"]["missing"] == ["multi_turn_miss_param", "multi_turn_long_context"]
    verdicts = {v["id"]: v for v in map(json.loads, (tmp_path / "answers.verdicts.jsonl").read_text().splitlines())}
    assert verdicts["multi_turn_base_0"]["decoded"][0][0] == [
        {"cd": {"folder": "document"}}, {"mkdir": {"dir_name": "temp"}},
        {"mv": {"source": "final_report.pdf", "destination": "temp"}}]


def test_multi_turn_answers_are_stored_and_shown(workspace, tmp_path, runner):
    from looptool.cli import app

    path = _write(tmp_path, [{"id": "multi_turn_base_0", "output": render(truth_calls(entry("multi_turn_base_0")))}])
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", path, "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "multi_turn_base (200)" in result.output and "100.00 (1/1*)" in result.output
    assert "multi-turn lacks multi_turn_miss_func" in result.output
    shown = runner.invoke(app, ["eval", "show", "--suite", "bfcl", "-w", str(workspace)])
    assert shown.exit_code == 0 and "multi_turn_base (200)" in shown.output, shown.output


@pytest.mark.parametrize(("line", "message"), [
    ({"id": "multi_turn_base_0", "output": "text"},
     "answers.jsonl:1: output: expected a list per turn of step texts for a multi-turn entry, got str"),
    ({"id": "multi_turn_base_0", "output": [["a"], "b"]},
     "answers.jsonl:1: output[1]: expected the list of step texts of turn 1, got str"),
    ({"id": "multi_turn_base_0", "output": [["a", 3]]},
     "answers.jsonl:1: output[0][1]: expected the model's raw text as a string, got int"),
    ({"id": "multi_turn_base_0"}, "answers.jsonl:1: output: expected a list per turn of step texts"),
    ({"id": "simple_0", "output": [["a"]]},
     "answers.jsonl:1: output: expected the model's raw text as a string, got list"),
    ({"id": "multi_turn_composite_0", "output": [["a"]]},
     "answers.jsonl:1: id: 'multi_turn_composite_0' is not an id of a BFCL-v3 category"),
    ({"id": "multi_turn_base_200", "output": [["a"]]}, "id: 'multi_turn_base_200' is not in the BFCL-v3 data"),
])
def test_malformed_multi_turn_lines_fail_with_one_line(tmp_path, runner, line, message):
    from looptool.cli import app

    path = _write(tmp_path, [line])
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", path, "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1, result.output


def test_a_second_line_names_its_line_number(tmp_path, runner):
    from looptool.cli import app

    path = _write(tmp_path, [{"id": "multi_turn_base_0", "output": [["a"]]}, {"id": "multi_turn_base_0", "output": []}])
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", path, "-w", str(tmp_path)])
    assert result.exit_code == 1 and "answers.jsonl:2: id: 'multi_turn_base_0' appears twice" in result.output
