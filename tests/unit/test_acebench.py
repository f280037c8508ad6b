"""ACEBench-en Normal/Special scoring: the shipped data, the decoder, the checker's rules and
oddities (ACEBench's own, kept for comparable numbers), the outputs file and the CLI."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.eval.acebench_data import (
    CATEGORIES,
    NORMAL_CATEGORIES,
    SPECIAL_CATEGORIES,
    category_of,
    load_category,
    load_entries,
)
from looptool.eval.acebench_decode import decode, outermost_brackets
from looptool.eval.acebench_prompt import prompt_messages
from looptool.eval.acebench_suite import (
    WEIGHTED_LABEL,
    parse_categories,
    read_outputs,
    run_settings,
    score_answer,
    summarise,
)
from looptool.eval.outputs_file import OutputsFileError
from looptool.eval.runner import EvalItem, score_safely
from looptool.config import WorkspaceConfig

# The 29 possible answers that fail against themselves in ACEBench's own scorer (docs: 27 multi-turn
# answers whose strings inside an object hold spaces, which the multi-turn whitespace deletion
# removes before parsing, so the substring check of the object's leaves fails; preference_40's
# array has no item type, so its items are checked as objects; parallel_function_42 expects an
# empty list, which the nested type check refuses).
KNOWN_ORACLE_FAILURES = {
    "normal_single_turn_parallel_function_42",  # event_details: [] -- empty answer list fails the nested type check
    "normal_preference_40",  # UserDietaryPreferences: array without "items" -> items checked as objects
    *(f"normal_multi_turn_user_adjust_{n}" for n in
      ("3_0", "4_0", "13_0", "14_0", "15_0", "15_2", "16_0", "24_0", "29_0", "38_0", "43_0", "45_0", "48_0")),
    *(f"normal_multi_turn_user_switch_{n}" for n in
      ("6_0", "8_0", "10_1", "11_0", "15_1", "20_0", "25_0", "31_1", "33_0", "35_0", "40_0", "43_0", "45_0", "45_1")),
}


def render(answer: dict) -> str:
    """A possible answer written as ACEBench asks models to answer: [ApiName(key='value', ...)]."""
    calls = [f"{re.sub(r'_[0-9]+$', '', name)}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
             for name, args in answer.items()]
    return "[" + ", ".join(calls) + "]"


def score(entry_id: str, text: str, fmt: str = "acebench"):
    entry = load_entries([entry_id])[entry_id]
    return score_safely(EvalItem(entry.id, entry.category, [], lambda t: score_answer(entry, t, fmt)), text)


def first_answer(entry_id: str) -> dict:
    truth = load_entries([entry_id])[entry_id].ground_truth
    return truth[0] if isinstance(truth, list) else truth


# -- data ------------------------------------------------------------------------------------------


def test_the_normal_and_special_data_ship_with_the_package():
    sizes = {c: len(load_category(c)) for c in CATEGORIES}
    assert sum(sizes[c] for c in NORMAL_CATEGORIES) == 823 and sum(sizes[c] for c in SPECIAL_CATEGORIES) == 150
    assert sizes["normal_multi_turn_user_adjust"] == 123 and sizes["special_incomplete"] == 50


def test_category_is_the_id_without_its_trailing_numbers():
    assert category_of("normal_multi_turn_user_adjust_12_3") == "normal_multi_turn_user_adjust"
    assert category_of("special_error_param_7") == "special_error_param"
    for bad in ("agent_multi_step_0", "normal_atom_bool", "simple_3"):
        with pytest.raises(ValueError):
            category_of(bad)


def test_categories_option_expands_groups_and_refuses_agent():
    assert parse_categories(None) == list(CATEGORIES)
    assert parse_categories("special,normal_atom_bool") == [*SPECIAL_CATEGORIES, "normal_atom_bool"]
    with pytest.raises(Exception, match="agent"):
        parse_categories("agent_multi_step")
    with pytest.raises(Exception, match="unknown"):
        parse_categories("nope")


# -- oracle ----------------------------------------------------------------------------------------


def test_every_possible_answer_passes_except_the_documented_ones():
    failed, count = set(), 0
    for category in NORMAL_CATEGORIES:
        for entry in load_category(category):
            alternatives = entry.ground_truth if isinstance(entry.ground_truth, list) else [entry.ground_truth]
            for answer in alternatives:
                count += 1
                if not score(entry.id, render(answer)).passed:
                    failed.add(entry.id)
    assert count == 825  # 823 entries, two of them with two alternatives
    assert failed == KNOWN_ORACLE_FAILURES and len(failed) == 29


def test_the_multi_turn_oracle_failures_pass_without_whitespace_deletion():
    # The cause is the whitespace deletion of ACEBench's text reader: through the <tool_call>
    # reader (which deletes nothing) the same answers pass.
    entry_id = "normal_multi_turn_user_adjust_3_0"
    (name, args), = first_answer(entry_id).items()
    tagged = f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"
    assert not score(entry_id, render(first_answer(entry_id))).passed
    assert score(entry_id, tagged, "tool_call").passed


def test_every_special_answer_built_from_the_ground_truth_passes():
    for entry in load_category("special_incomplete"):
        (name, params), = entry.ground_truth.items()
        reply = f'["Missing necessary parameters ({", ".join(params)}) for the api ({name})"]'
        assert score(entry.id, reply).passed, entry.id
    for entry in load_category("special_error_param"):
        values = [v for vs in entry.ground_truth.values() for v in vs]
        reply = f'["There is incorrect value ({", ".join(values)}) for the parameters (x) in the conversation history."]'
        assert score(entry.id, reply).passed, entry.id
    for entry in load_category("special_irrelevant"):
        assert score(entry.id, entry.ground_truth).passed


# -- mutations -------------------------------------------------------------------------------------

SINGLE = "normal_single_turn_single_function_0"
PARALLEL = "normal_single_turn_parallel_function_0"


def _single() -> tuple[str, dict]:
    (name, args), = first_answer(SINGLE).items()
    return name, dict(args)


def _call(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def test_mutations_of_a_single_call():
    name, args = _single()
    string_param = next(k for k, v in args.items() if isinstance(v, str))
    assert score(SINGLE, f"[{_call(name, args)}]").passed
    assert score(SINGLE, f"Here you go:\n```\n[{_call(name, args)}]\n```").passed  # text around the list is ignored
    assert not score(SINGLE, f"[{_call(name, {**args, string_param: 'completely different'})}]").passed  # wrong value
    assert not score(SINGLE, "[]").passed  # empty answer
    assert not score(SINGLE, "").passed and not score(SINGLE, "I cannot help.").passed  # no list at all
    assert not score(SINGLE, f"[{_call(name, args)}, {_call(name, args)}]").passed  # extra call
    assert not score(SINGLE, f"[{_call(name, {**args, 'unknown_param': 'x'})}]").passed  # extra parameter
    assert not score(SINGLE, f"[{_call(name + 'X', args)}]").passed  # wrong name
    assert not score(SINGLE, f"[{_call(name, {**args, string_param: 12345})}]").passed  # wrong type


def test_a_missing_required_parameter_fails():
    entry = load_entries([SINGLE])[SINGLE]
    name, args = _single()
    required = next(f for f in entry.functions if f["name"] == name)["parameters"]["required"]
    dropped = {k: v for k, v in args.items() if k != required[0]}
    assert not score(SINGLE, f"[{_call(name, dropped)}]").passed


def test_parallel_calls_order_does_not_matter_but_each_must_be_there():
    calls = [_call(re.sub(r"_[0-9]+$", "", n), a) for n, a in first_answer(PARALLEL).items()]
    assert len(calls) >= 2
    assert score(PARALLEL, f"[{', '.join(calls)}]").passed
    assert score(PARALLEL, f"[{', '.join(reversed(calls))}]").passed  # swapped order passes
    assert not score(PARALLEL, f"[{calls[0]}]").passed  # dropped call


def test_special_categories_need_their_phrases():
    assert not score("special_irrelevant_0", "I am sorry, I cannot do that.").passed
    assert score("special_irrelevant_0", "Sadly, due to the limitations of the function, no.").passed
    (name, params), = load_entries(["special_incomplete_1"])["special_incomplete_1"].ground_truth.items()
    assert not score("special_incomplete_1", f"Please tell me the {params[0]} for {name}.").passed  # no phrase
    assert not score("special_incomplete_1", f"Missing necessary parameters for the api ({name})").passed  # no params
    assert score("special_incomplete_1", f"Missing necessary parameters ({', '.join(params)}) for the api ({name})").passed
    assert not score("special_error_param_0", "There is incorrect value in the conversation.").passed  # no value


# -- ACEBench's oddities, reproduced ---------------------------------------------------------------


def test_a_wrong_top_level_number_passes():
    entry_id = next(e.id for e in load_category("normal_atom_number")
                    if any(isinstance(v, int) and not isinstance(v, bool) for v in first_answer(e.id).values()
                           for v in (v.values() if isinstance(v, dict) else [v])))
    (name, args), = first_answer(entry_id).items()
    key = next(k for k, v in args.items() if isinstance(v, int) and not isinstance(v, bool))
    assert score(entry_id, f"[{_call(name, {**args, key: args[key] + 977})}]").passed


def test_substring_matching_lets_direct_match_indirect():
    name, args = _single()
    key = next(k for k, v in args.items() if isinstance(v, str))
    args[key] = "Direct"
    entry = load_entries([SINGLE])[SINGLE]
    oddity = entry.__class__(**{**entry.__dict__, "ground_truth": {name: args}})
    assert score_answer(oddity, f"[{_call(name, {**args, key: 'Indirect'})}]", "acebench").passed
    assert not score_answer(oddity, f"[{_call(name, {**args, key: 'Indrect'})}]", "acebench").passed


def test_multi_turn_answers_are_read_after_deleting_all_whitespace():
    entry_id = "normal_multi_turn_user_adjust_0_0"
    text = render(first_answer(entry_id))
    assert score(entry_id, text.replace("(", "(\n  ")).passed
    assert not score(entry_id, "Sure!\n" + text).passed  # prose around it fails in multi-turn
    assert not score(entry_id, f"<think>ok</think>{text}").passed


def test_bare_names_and_true_null_read_as_strings():
    decoded = decode("[f(a=Paris, b=true, c=null, d=True, e=-3, g=[1, 'x'], h={'k': 1}, i=g())]", multi_turn=False)
    assert decoded.calls == [{"f": {"a": "Paris", "b": "true", "c": "null", "d": True, "e": -3, "g": [1, "x"],
                                    "h": {"k": 1}, "i": {"g": {}}}}]
    assert decode("[f(1, a=2)]", multi_turn=False).calls == [{"f": {"a": 2}}]  # positional arguments dropped
    assert decode("[f(a=+5)]", multi_turn=False).calls == [{"f": {"a": -5}}]  # upstream negates any unary operator


def test_the_first_outermost_brackets_are_taken():
    assert outermost_brackets("a [f(x=[1])] b [g()]") == "[f(x=[1])]"
    assert outermost_brackets('[f(a="]")]') == '[f(a="]'  # brackets inside strings count, as upstream
    assert outermost_brackets("no list") is None


def test_nothing_model_written_is_run_as_code(tmp_path):
    marker = tmp_path / "ran"
    for text in (f"[__import__('os').system('touch {marker}')]",
                 f"[f(a=__import__('os').system('touch {marker}'))]",
                 f"[f(a=1+__import__('os').system('touch {marker}'))]",
                 f"[f(a=(lambda: __import__('os').system('touch {marker}'))())]"):
        for multi_turn in (False, True):
            decode(text, multi_turn=multi_turn)
    assert not marker.exists()
    assert decode("[__import__('os').system('x')]", multi_turn=False).calls == [{"system": {}}]  # a name, never run
    assert not score(SINGLE, "[__import__('os').system('x')]").passed
    assert decode("[f(a=1+x)]", multi_turn=False).calls is None  # only arithmetic on literals is computed
    assert decode("[f(a=2*3)]", multi_turn=False).calls == [{"f": {"a": 6}}]


def test_arithmetic_is_computed_as_python_would_over_literals_of_any_type():
    # ACEBench `eval`s a BinOp, so `[a] + [b]` is a list and `True + 1` is 2 there; the
    # decoder used to compute arithmetic on numbers and strings only and failed these.
    decoded = decode("[f(a=['x'] + ['y'], b=(1,) + (2,), c=True + 1, d=~2 + 1, e=1 << 3, g={'k': 1} | {'j': 2})]",
                     multi_turn=False)
    assert decoded.calls == [{"f": {"a": ["x", "y"], "b": (1, 2), "c": 2, "d": -2, "e": 8, "g": {"k": 1, "j": 2}}}]
    assert decode("[f(a=[1, 2][0] + 1, b='abc'[1:] + '!')]", multi_turn=False).calls == [{"f": {"a": 2, "b": "bc!"}}]
    entry_id = next(e.id for e in load_category("normal_atom_list")
                    if any(isinstance(v, list) and len(v) > 1 for v in first_answer(e.id).values()
                           for v in (v.values() if isinstance(v, dict) else [v])))
    (name, args), = first_answer(entry_id).items()
    text = f"[{name}(" + ", ".join(f"{k}={v[:1]!r} + {v[1:]!r}" if isinstance(v, list) and len(v) > 1 else f"{k}={v!r}"
                                  for k, v in args.items()) + ")]"
    assert score(entry_id, text).passed
    # Still never run, and bounded: names, calls and huge results fail the entry.
    for text in ("[f(a=[1] + x)]", "[f(a=len('ab') + 1)]", "[f(a=[1] * 10**9)]", "[f(a='%999999d' % 1)]",
                 "[f(a=None + 1)]"):
        assert decode(text, multi_turn=False).calls is None, text


def test_tool_call_prompt_answers_go_through_the_same_matcher():
    name, args = _single()
    tagged = f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"
    assert score(SINGLE, tagged, "tool_call").passed
    assert not score(SINGLE, tagged.replace(name, name + "X"), "tool_call").passed
    assert not score(SINGLE, "plain text", "tool_call").passed  # no call where one is expected


# -- prompts and settings --------------------------------------------------------------------------


def test_acebench_prompt_is_the_official_text_and_the_option_is_part_of_the_run():
    entry = load_category("normal_preference")[0]
    system, user = prompt_messages(entry, "acebench")
    assert system["content"].startswith("You are an AI assistant, and your role is called assistant.")
    assert entry.profile in system["content"] and system["content"].endswith(str(entry.functions))
    assert user["content"] == "Conversation history 1..t:\n" + entry.question
    special = prompt_messages(load_category("special_incomplete")[0], "tool_call")
    assert "<tool_call>" in special[0]["content"] and "Missing necessary parameters" in special[0]["content"]
    config = WorkspaceConfig()
    other = config.model_copy(update={"eval": config.eval.model_copy(update={"acebench_prompt": "tool_call"})})
    assert run_settings(config)["prompt"] == "acebench" and run_settings(other)["prompt"] == "tool_call"


def test_summary_groups_and_per_dialogue_multi_turn_accuracy():
    rows = [{"entry_id": "normal_multi_turn_user_adjust_0_0", "category": "normal_multi_turn_user_adjust", "passed": 1},
            {"entry_id": "normal_multi_turn_user_adjust_0_1", "category": "normal_multi_turn_user_adjust", "passed": 0},
            {"entry_id": "normal_multi_turn_user_adjust_1_0", "category": "normal_multi_turn_user_adjust", "passed": 1},
            {"entry_id": "normal_atom_bool_0", "category": "normal_atom_bool", "passed": 1},
            {"entry_id": "special_irrelevant_0", "category": "special_irrelevant", "passed": 0}]
    s = summarise(rows, {})
    adjust = s.categories["normal_multi_turn_user_adjust"]
    assert adjust["turn_accuracy"] == pytest.approx(2 / 3) and adjust["accuracy"] == 0.5  # dialogue 1 of 2
    assert s.normal.accuracy == pytest.approx(0.75) and s.special.accuracy == 0.0
    assert s.weighted == pytest.approx(0.578 * 0.75 / (0.578 + 0.2676))
    assert "Overall" not in WEIGHTED_LABEL


# -- the outputs file and the CLI ------------------------------------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    ("not json", ":1: not JSON"),
    ("[1]", ":1: expected an object"),
    ('{"output": "x"}', ":1: id: expected"),
    ('{"id": "simple_1", "output": "x"}', ":1: id: 'simple_1' is not an id of an ACEBench"),
    ('{"id": "normal_atom_bool_1", "output": 3}', ":1: output: expected the model's raw text"),
    ('{"id": "normal_atom_bool_1", "output": "x"}\n{"id": "normal_atom_bool_1", "output": "y"}', ":2: id: 'normal_atom_bool_1' appears twice"),
])
def test_malformed_outputs_files_fail_with_one_line(tmp_path, line, message):
    path = tmp_path / "out.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(OutputsFileError, match=re.escape(message)):
        read_outputs(path)
    result = CliRunner().invoke(app, ["eval", "acebench", "--outputs", str(path)])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_outputs_file_mixes_categories_and_prints_json(tmp_path):
    lines = [{"id": SINGLE, "output": render(first_answer(SINGLE))},
             {"id": "normal_multi_turn_user_switch_0_0", "output": "no"},
             {"id": "special_irrelevant_3", "output": "Due to the limitations of the function, I cannot."}]
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(app, ["eval", "acebench", "-w", str(tmp_path), "--outputs", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {e["id"]: e["pass"] for e in out["entries"]} == {SINGLE: True, "normal_multi_turn_user_switch_0_0": False,
                                                             "special_irrelevant_3": True}
    assert out["not_run"] == ["agent_multi_turn", "agent_multi_step"]
    table = CliRunner().invoke(app, ["eval", "acebench", "--outputs", str(path)])
    assert "Agent (agent_multi_turn, agent_multi_step): not run" in table.output and WEIGHTED_LABEL in table.output


def test_eval_help_describes_acebench():
    assert "ACEBench" in CliRunner().invoke(app, ["eval", "--help"]).output
    assert "Special" in CliRunner().invoke(app, ["eval", "acebench", "--help"]).output
