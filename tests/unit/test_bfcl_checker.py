"""Tests for the BFCL-v3 evaluation pieces: the vendored data, the AST checker (with its
Java/JavaScript converters), the decoders, and the "bfcl" comparison mode of looptool.calls.

The checker is tested end to end with an oracle (the ground truth rendered as a model answer)
over every entry that has ground truth, and with mutations of that oracle whose verdicts
follow from the official rules.
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from looptool.calls import label_matches, parse_calls
from looptool.eval.bfcl import (
    CATEGORIES,
    CheckResult,
    Entry,
    calls_match_bfcl,
    category_of,
    check,
    decode,
    encode_python,
    encode_tool_call_tags,
    language_of,
    load_category,
    load_entries,
)
from looptool.eval.bfcl_checker import max_matching, standardize_string
from looptool.eval.bfcl_data import NO_GROUND_TRUTH, default_data_dir
from looptool.eval.bfcl_decode import oracle_calls
from looptool.eval.bfcl_literals import java_to_python, js_to_python
from looptool.schema import Label, ToolCall

AST_CATEGORIES = [c for c in CATEGORIES if c not in NO_GROUND_TRUTH]
PYTHON_AST_CATEGORIES = [c for c in AST_CATEGORIES if language_of(c) == "python"]

# Entries no output can pass, under the official checker as under this one (checked by running
# the official checker on these outputs): the data contradicts itself.
UNPASSABLE = {
    "live_simple_106-63-0": "required array parameters whose accepted-value list is empty",
    "live_simple_112-68-0": "required array parameters whose accepted-value list is empty",
    "live_multiple_862-181-3": "the answer requires journey_start_time, which the docs do not declare",
    "live_multiple_964-207-0": "the docs require statement, which the answer does not list",
    "java_36": "an ArrayList of `any` converts to strings only; the answer holds 42 and true",
    "java_65": "an ArrayList of `any` converts to strings only; the answer holds true",
}

ENTRY_COUNTS = {
    "simple": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "java": 100,
    "javascript": 50,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 882,
    "live_relevance": 18,
}


def entry(entry_id: str) -> Entry:
    return load_entries([entry_id])[entry_id]


# ---------------------------------------------------------------------------------------------
# Data


def test_categories_in_leaderboard_order_with_all_entries():
    assert list(CATEGORIES) == list(ENTRY_COUNTS)
    for category, count in ENTRY_COUNTS.items():
        entries = load_category(category)
        assert len(entries) == count, category
        assert len({e.id for e in entries}) == count
        assert all(e.category == category and category_of(e.id) == category for e in entries)
        assert all(e.messages and {"role", "content"} <= set(e.messages[0]) for e in entries)
        assert all("name" in f and "parameters" in f for e in entries for f in e.functions)
        # Only four live_irrelevance entries offer no function at all.
        assert sum(not e.functions for e in entries) == (4 if category == "live_irrelevance" else 0)
        has_truth = category not in NO_GROUND_TRUTH
        assert all((e.ground_truth is not None) == has_truth for e in entries)


def test_data_ships_with_its_license():
    folder = default_data_dir()
    assert (folder / "LICENSE-Apache-2.0.txt").is_file()
    assert "Apache" in (folder / "SOURCE_AND_LICENSE.md").read_text()


def test_load_category_is_cached_and_keeps_file_order():
    first = load_category("simple")
    assert [e.id for e in first[:3]] == ["simple_0", "simple_1", "simple_2"]
    assert load_category("simple")[0] is first[0]


@pytest.mark.parametrize(
    "entry_id,category",
    [
        ("simple_0", "simple"),
        ("parallel_multiple_3", "parallel_multiple"),
        ("live_simple_106-63-0", "live_simple"),
        ("live_parallel_multiple_0-0-0", "live_parallel_multiple"),
        ("javascript_49", "javascript"),
        ("java_0", "java"),
        ("irrelevance_12", "irrelevance"),
    ],
)
def test_category_of(entry_id, category):
    assert category_of(entry_id) == category


@pytest.mark.parametrize("entry_id", ["simple", "simple_", "multi_turn_base_0", "live_simple_x", "foo_1", "_1", ""])
def test_category_of_rejects_unknown_ids(entry_id):
    with pytest.raises(ValueError):
        category_of(entry_id)


def test_unknown_category_names_the_valid_ones():
    with pytest.raises(ValueError, match="multi_turn_base.*simple, multiple"):
        load_category("multi_turn_base")


def test_load_entries_mixes_categories_and_leaves_out_missing_ids():
    got = load_entries(["java_3", "simple_5", "simple_4000", "live_relevance_0-0-0"])
    assert {k: v.category for k, v in got.items()} == {
        "java_3": "java",
        "simple_5": "simple",
        "live_relevance_0-0-0": "live_relevance",
    }
    with pytest.raises(ValueError, match="exec_simple_0"):
        load_entries(["simple_1", "exec_simple_0"])


def test_language_of():
    assert [language_of(c) for c in ("simple", "java", "javascript", "live_multiple")] == [
        "python",
        "java",
        "javascript",
        "python",
    ]


# ---------------------------------------------------------------------------------------------
# The oracle: the ground truth itself must pass


def _oracle_failures(categories, render=None) -> tuple[dict[str, str], int, int]:
    """Check every entry's oracle answer (optionally through a text rendering); returns the
    failures, the number checked and the number skipped (answers the rendering cannot write)."""
    failures, checked, skipped = {}, 0, 0
    for category in categories:
        for e in load_category(category):
            calls = oracle_calls(e)
            if render is not None:
                try:
                    calls = render(calls)
                except ValueError:
                    skipped += 1
                    continue
            result = check(e, calls)
            checked += 1
            if not result.valid:
                failures[e.id] = result.error_type
    return failures, checked, skipped


def test_oracle_passes_every_passable_entry():
    failures, checked, _ = _oracle_failures(AST_CATEGORIES)
    assert checked == sum(ENTRY_COUNTS[c] for c in AST_CATEGORIES)
    assert set(failures) == set(UNPASSABLE), failures


def _via_tags(calls):
    decoded = decode(encode_tool_call_tags(calls), "tool_call_tags")
    assert decoded.ok, decoded.error
    return decoded.calls


def _via_python(calls):
    decoded = decode(encode_python(calls), "python")
    assert decoded.ok, decoded.error
    return decoded.calls


@pytest.mark.parametrize("render", [_via_tags, _via_python], ids=["tool_call_tags", "python"])
def test_oracle_survives_rendering_as_text(render):
    failures, checked, skipped = _oracle_failures(PYTHON_AST_CATEGORIES, render)
    assert skipped <= 5 and checked + skipped == sum(ENTRY_COUNTS[c] for c in PYTHON_AST_CATEGORIES)
    assert set(failures) == {i for i in UNPASSABLE if category_of(i) in PYTHON_AST_CATEGORIES}, failures


def test_oracle_java_and_javascript_values_are_literal_strings():
    for category in ("java", "javascript"):
        for e in load_category(category):
            for call in oracle_calls(e):
                assert all(isinstance(v, str) for args in call.values() for v in args.values()), e.id


# ---------------------------------------------------------------------------------------------
# Mutated oracles: one rule each


def set_arg(param, value, call=0):
    def mutate(calls):
        name = next(iter(calls[call]))
        calls[call][name][param] = value
        return calls

    return mutate


def drop_arg(param, call=0):
    def mutate(calls):
        del calls[call][next(iter(calls[call]))][param]
        return calls

    return mutate


def set_key(param, key, value):
    def mutate(calls):
        args = next(iter(calls[0].values()))
        if value is None:
            del args[param][key]
        else:
            args[param][key] = value
        return calls

    return mutate


def rename(name):
    return lambda calls: [{name: next(iter(calls[0].values()))}] + calls[1:]


NO_MATCH = "parallel_function_checker_no_order:cannot_find_match"
CONDITIONS = [  # simple_96's accepted list of dicts
    {"field": "age", "operation": ">", "value": "25"},
    {"field": "job", "operation": "=", "value": "engineer"},
]
WRONG_NAME = "simple_function_checker:wrong_func_name"

MUTATIONS = [
    # id, what, mutation, expected error_type (None: passes)
    ("simple_0", "unchanged", lambda c: c, None),
    ("simple_0", "string for integer", set_arg("base", "10"), "type_error:simple"),
    ("simple_0", "True for integer (bool is not int)", set_arg("base", True), "type_error:simple"),
    ("simple_0", "float for integer", set_arg("base", 10.0), "type_error:simple"),
    ("simple_0", "wrong number", set_arg("base", 11), "value_error:others"),
    ("simple_0", "missing required", drop_arg("base"), "simple_function_checker:missing_required"),
    ("simple_0", "extra parameter", set_arg("color", "red"), "simple_function_checker:unexpected_param"),
    ("simple_0", "optional omitted", drop_arg("unit"), None),
    ("simple_0", "explicit empty string where '' is accepted", set_arg("unit", ""), None),
    ("simple_0", "string case and punctuation", set_arg("unit", "U-nits."), None),
    ("simple_0", "wrong string", set_arg("unit", "cm"), "value_error:string"),
    ("simple_0", "wrong function name", rename("calculate_triangle_area_v2"), WRONG_NAME),
    ("simple_0", "two calls", lambda c: c + c, "simple_function_checker:wrong_count"),
    ("simple_0", "no call", lambda c: [], "simple_function_checker:wrong_count"),
    ("simple_13", "standardised expression", set_arg("function", "X ** 2"), None),
    ("simple_13", "wrong expression", set_arg("function", "x^3"), "value_error:string"),
    ("simple_13", "capitalised optional value", set_arg("method", "Trapezoidal"), None),
    ("simple_13", "list order matters", set_arg("interval", [3.0, 1.0]), "value_error:list/tuple"),
    ("simple_13", "int inside an array of float", set_arg("interval", [1, 3]), "type_error:nested"),
    ("simple_13", "tuple where array expected", set_arg("interval", (1.0, 3.0)), "type_error:simple"),
    ("simple_83", "tuple where tuple expected", set_arg("coord1", (33.4484, -112.074)), None),
    ("simple_200", "int for a top-level float", set_arg("fuel_efficiency", 25), None),
    ("simple_200", "string for float", set_arg("fuel_efficiency", "25"), "type_error:simple"),
    ("simple_89", "dict: other accepted value", set_key("conditions", "school", "bluebird hs"), None),
    ("simple_89", "dict: missing key", set_key("conditions", "school", None), "value_error:dict_key"),
    ("simple_89", "dict: extra key", set_key("conditions", "grade", "A"), "value_error:dict_key"),
    ("simple_89", "dict: wrong value", set_key("conditions", "department", "Arts"), "value_error:dict_value"),
    ("simple_96", "list of dicts: accepted", set_arg("conditions", CONDITIONS), None),
    ("simple_96", "list of dicts: order", set_arg("conditions", CONDITIONS[::-1]), "value_error:dict_value"),
    ("simple_96", "list of dicts: count", set_arg("conditions", CONDITIONS[:1]), "value_error:list_dict_count"),
    ("simple_307", "variable escape: bool answer for a string param", set_arg("venue", True), None),
    ("simple_307", "variable escape: then compared as a plain value", set_arg("venue", "True"), "value_error:others"),
    ("parallel_multiple_21", "variable escape: the name", set_arg("x", "data['sales']", call=1), None),
    ("parallel_multiple_21", "variable escape: a list instead", set_arg("x", ["data['sales']"], call=1), NO_MATCH),
    ("simple_363", "the doc's name, not the answer's key", rename("find_closest"), WRONG_NAME),
    ("multiple_0", "two calls", lambda c: c + c, "multiple_function_checker:wrong_count"),
    ("parallel_0", "swapped order", lambda c: c[::-1], None),
    ("parallel_0", "one call missing", lambda c: c[:1], "parallel_function_checker_no_order:wrong_count"),
    ("parallel_0", "one call wrong", set_arg("duration", 16, call=1), NO_MATCH),
    ("parallel_0", "the same call twice", lambda c: [c[0], c[0]], NO_MATCH),
    ("parallel_178", "swapped order (greedy false negative)", lambda c: c[::-1], NO_MATCH),
    ("parallel_multiple_26", "a parameter the docs lack", set_arg("type", "credit", call=1), NO_MATCH),
    ("java_25", "Java value that is not a string", set_arg("id", 42), "type_error:java"),
    ("java_25", "long without its L", set_arg("id", "42"), "type_error:simple"),
    ("java_25", "wrong long", set_arg("id", "43L"), "value_error:others"),
    ("java_26", "variable name for an int param", set_arg("resultSetType", "ResultSet.TYPE_FORWARD_ONLY"),
     "value_error:others"),
    ("java_83", "Array elements keep their quotes (official quirk)",
     set_arg("argv", 'new String[]{"-waitTime", "2", "-iterations", "500"}'), "value_error:list/tuple"),
    ("javascript_0", "JS value that is not a string", set_arg("isComplete", True), "type_error:js"),
    ("javascript_0", "JS boolean spelled like Python", set_arg("isComplete", "True"), "type_error:simple"),
    ("javascript_3", "JS array order", set_arg("coordinates", "[30, 60]"), "value_error:list/tuple"),
    ("javascript_3", "JS array via new Array", set_arg("coordinates", "new Array(60, 30)"), None),
    ("javascript_12", "JS object with a quoted key", set_arg("requestConfig", "{'method': \"GET\"}"), None),
]


@pytest.mark.parametrize("entry_id,what,mutate,error_type", MUTATIONS, ids=[f"{m[0]}: {m[1]}" for m in MUTATIONS])
def test_mutated_oracle(entry_id, what, mutate, error_type):
    e = entry(entry_id)
    result = check(e, mutate(copy.deepcopy(oracle_calls(e))))
    assert (result.valid, result.error_type) == (error_type is None, error_type), result.error
    if not result.valid:
        assert result.error and "\n" not in result.error


def test_bipartite_matching_accepts_the_greedy_false_negative():
    e = entry("parallel_178")
    swapped = oracle_calls(e)[::-1]
    assert not check(e, swapped).valid
    assert check(e, swapped, parallel_matching="bipartite") == CheckResult(True)
    wrong = set_arg("company_name", "Google", call=0)(copy.deepcopy(swapped))
    result = check(e, wrong, parallel_matching="bipartite")
    assert result.error_type == "parallel_function_checker_no_order:cannot_find_match"
    with pytest.raises(ValueError):
        check(e, swapped, parallel_matching="optimal")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "passes,size",
    [
        ([], 0),
        ([[True]], 1),
        ([[True, True], [True, False]], 2),  # greedy would give row 0 column 0 and strand row 1
        ([[True, False, False], [True, False, False], [False, True, True]], 2),
        ([[False, False], [False, False]], 0),
    ],
)
def test_max_matching(passes, size):
    matching = max_matching(passes)
    assert len(matching) == size
    assert len(set(matching.values())) == size and all(passes[r][c] for r, c in matching.items())


@pytest.mark.parametrize(
    "decoded,error_type",
    [
        (None, "ast_decoder:decoder_failed"),
        ("calculate_triangle_area(base=10)", "ast_decoder:decoder_wrong_output_format"),
        ([{"calculate_triangle_area": {"base": 10, "height": 5}, "x": {}}], "ast_decoder:decoder_wrong_output_format"),
        (["calculate_triangle_area"], "ast_decoder:decoder_wrong_output_format"),
        ([{"calculate_triangle_area": [10, 5]}], "ast_decoder:decoder_wrong_output_format"),
        ([{}], "ast_decoder:decoder_wrong_output_format"),
    ],
)
def test_undecodable_outputs_fail_ast_categories(decoded, error_type):
    assert check(entry("simple_0"), decoded).error_type == error_type


# ---------------------------------------------------------------------------------------------
# Relevance and irrelevance

NO_CALL_OUTPUTS = ["", "I'm sorry, none of these functions can help.", "[]", "```\n[]\n```"]
CALL_OUTPUT = '<tool_call>\n{"name": "anything", "arguments": {"x": 1}}\n</tool_call>'


@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance", "live_relevance"])
def test_relevance_categories(category):
    e = load_category(category)[0]
    wants_call = category == "live_relevance"
    no_call = [None, [], [{}], ["not a call"], [{"a": {}, "b": {}}]]
    no_call += [decode(t, fmt).calls for t in NO_CALL_OUTPUTS for fmt in ("tool_call_tags", "python")]
    for decoded in no_call:
        result = check(e, decoded)
        assert result.valid is not wants_call, decoded
        if wants_call:
            assert result.error_type == "relevance_error:decoder_failed"
    with_calls = [[{"anything": {}}], [{"f": {"x": 1}}, {"g": {}}], decode(CALL_OUTPUT).calls]
    for decoded in with_calls + [decode("[f(x=1)]", "python").calls]:
        result = check(e, decoded)
        assert result.valid is wants_call, decoded
        if not wants_call:
            assert result.error_type == "irrelevance_error:decoder_success"


# ---------------------------------------------------------------------------------------------
# Java and JavaScript literals


@pytest.mark.parametrize(
    "literal,type_name,item_type,value",
    [
        ('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String", ["a", "b"]),
        ("new ArrayList<Long>(Arrays.asList(1L, 2L))", "ArrayList", "long", [1, 2]),
        ("new ArrayList<Integer>() {{ add(1); add(2); }}", "ArrayList", "integer", [1, 2]),
        ('new ArrayList<>(Arrays.asList("a", 1))', "ArrayList", "any", ['"a"', "1"]),
        ("new ArrayList<>()", "ArrayList", "String", []),
        ('new String[]{"a", "b"}', "Array", "String", ['"a"', '"b"']),
        ("new int[]{1, 2, 3}", "Array", "integer", [1, 2, 3]),
        ("new int[] { }", "Array", "integer", []),
        ('new HashMap<String, Object>() {{ put("k", 1); put("s", "v"); put("b", true); }}', "HashMap", None,
         {"k": 1, "s": "v", "b": True}),
        ("new HashMap<>()", "HashMap", None, {}),
        ("true", "boolean", None, True),
        ("True", "boolean", None, "True"),
        ("10L", "long", None, 10),
        ("10", "long", None, "10"),
        ("-7", "integer", None, -7),
        ("3.5", "double", None, 3.5),
        ("3.5", "float", None, "3.5"),
        ("3.5f", "float", None, 3.5),
        ("1e3", "double", None, 1000.0),
        ("'c'", "char", None, "'c'"),
        ("null", "String", None, "null"),
        ("someVariable", "HashMap", None, "someVariable"),
    ],
)
def test_java_literals(literal, type_name, item_type, value):
    converted = java_to_python(literal, type_name, item_type)
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize(
    "literal,type_name,item_type,value",
    [
        ("{key: 'v'}", "dict", None, {"key": "v"}),
        ("{'a': 1, 'b': [1, 'x'], 'c': true}", "dict", None, {"a": 1, "b": [1, "x"], "c": True}),
        ("{}", "dict", None, {}),
        ("[1, 2]", "array", "integer", [1, 2]),
        ("[1, 2]", "array", None, [1, 2]),
        ("['a', \"b\"]", "array", "String", ["a", "b"]),
        ("new Array(1.5, 2)", "array", "float", [1.5, 2.0]),
        ("[[1, 2], [3, 4]]", "array", "array", [[1, 2], [3, 4]]),
        ("[]", "array", "String", []),
        ("'abc'", "String", None, "abc"),
        ("abc", "String", None, "abc"),
        ("true", "Boolean", None, True),
        ("12n", "Bigint", None, 12),
        ("3.5", "float", None, 3.5),
        ("3", "float", None, 3.0),
        ("1e3", "float", None, "1e3"),
        ("null", "any", None, "null"),
        ("myList", "array", "String", "myList"),
    ],
)
def test_js_literals(literal, type_name, item_type, value):
    converted = js_to_python(literal, type_name, item_type)
    assert converted == value and type(converted) is type(value)


def test_unsupported_converter_types_raise():
    with pytest.raises(ValueError):
        java_to_python("x", "Set")
    with pytest.raises(ValueError):
        js_to_python("x", "Symbol")


@pytest.mark.parametrize(
    "text,standard",
    [("X ** 2", "x2"), ("April 1, 2024", "april12024"), ("it's", 'it"s'), ("a_b-c/d.e^f*g", "abcdefg"), ("", "")],
)
def test_standardize_string(text, standard):
    assert standardize_string(text) == standard


# ---------------------------------------------------------------------------------------------
# Decoding

PYTHON_DECODE = [
    ("[get_weather(city='Paris')]", [{"get_weather": {"city": "Paris"}}]),
    ("get_weather(city='Paris')", [{"get_weather": {"city": "Paris"}}]),
    ("```\n[math.factorial(n=5), a.b.c(x=-2, y=-0.5)]\n```",
     [{"math.factorial": {"n": 5}}, {"a.b.c": {"x": -2, "y": -0.5}}]),
    ("[f(1, 'pos', a=2)]", [{"f": {"a": 2}}]),  # positional arguments are dropped, as in BFCL
    ("[f(t=(1, 2), l=[1, (2,)], d={'k': [None, True]})]",
     [{"f": {"t": (1, 2), "l": [1, (2,)], "d": {"k": [None, True]}}}]),
    ("[f(x=data['sales'], z=g(), w=h(k=1))]", [{"f": {"x": "data['sales']", "z": "g()", "w": {"h": {"k": 1}}}}]),
    ("[f(x=some_variable, e=...)]", [{"f": {"x": "some_variable", "e": "..."}}]),
    ("[f(a=2**10, b=60*60, c=1/4, d='ab' + 'c', e=-(3), f=7 // 2 % 3)]",
     [{"f": {"a": 1024, "b": 3600, "c": 0.25, "d": "abc", "e": -3, "f": 0}}]),
    ("<think>maybe f(a=1)?</think>\n[g(b=2)]", [{"g": {"b": 2}}]),
    ("[f()]", [{"f": {}}]),
]


@pytest.mark.parametrize("text,calls", PYTHON_DECODE)
def test_decode_python(text, calls):
    decoded = decode(text, "python")
    assert decoded.ok and decoded.error is None, decoded.error
    assert decoded.calls == calls
    assert [type(v) for c in decoded.calls for v in next(iter(c.values())).values()] == [
        type(v) for c in calls for v in next(iter(c.values())).values()
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "I cannot answer that with these tools.",
        "hello",
        "[f(a=1)] and some prose",
        "[1, 2]",
        "f(a=__import__('os').system('true') + 1)",
        "f(a=x + 1)",
        "f(a=9**9**9)",
        "f(a='x' * 10**9)",
        "f(a=1/0)",
        "f(a=not True)",
        "f(a=lambda x: x)",
        "f(a=np.mean)",
        "f(a={[1]: 2})",
        "f(a=" + "[" * 5000 + "]" * 5000 + ")",
        "f(a=\x00)",
        "x" * 200_001,
    ],
)
def test_decode_python_failures(text):
    decoded = decode(text, "python")
    assert decoded.calls is None and not decoded.ok
    assert decoded.error_type == "ast_decoder:decoder_failed"
    assert decoded.error and "\n" not in decoded.error


def test_decode_python_never_executes_code(monkeypatch):
    import os

    ran = []
    monkeypatch.setattr(os, "system", lambda cmd: ran.append(cmd))
    decode("[f(a=__import__('os').system('echo pwned') * 2)]", "python")
    decode("[f(a=(lambda: __import__('os').system('x'))())]", "python")
    assert ran == []


# As BFCL's Qwen FC handler reads `<tool_call>` blocks (QwenFCHandler._extract_tool_calls and
# decode_ast, bfcl-eval 2025.8.6.2): the newlines inside the tags belong to the pattern.
TAGS_DECODE = [
    ('<tool_call>\n{"name": "f.g", "arguments": {"a": [1, 2], "b": {"c": "d"}}}\n</tool_call>',
     [{"f.g": {"a": [1, 2], "b": {"c": "d"}}}]),
    ('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\n'
     '<tool_call>\n{"name": "f", "arguments": {"x": 1.5}}\n</tool_call>',
     [{"f": {}}, {"f": {"x": 1.5}}]),
    # Text around the blocks is ignored; so is a block cut off before its closing tag (a token limit).
    ('Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n<tool_call>\n{"name": "g", "argu',
     [{"f": {"a": 1}}]),
    # Keys besides name and arguments are ignored; reasoning up to the last </think> is dropped.
    ('<think>plan</think>\n<tool_call>\n{"name": "f", "arguments": {}, "id": 3}\n</tool_call>', [{"f": {}}]),
    # Not blocks, so no call: one line between the tags, bare JSON, Python-style calls, prose.
    ('<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>', []),
    ("[math.factorial(n=5)]", []),
    ('{"name": "f", "arguments": {"a": null}}', []),
    ("No function fits this request.", []),
    ("", []),
    # Any block that is not a JSON object: no call at all, the good blocks included.
    ('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\n<tool_call>\n{bad json\n</tool_call>', []),
    ('<tool_call>\n["f"]\n</tool_call>', []),
]


@pytest.mark.parametrize("text,calls", TAGS_DECODE)
def test_decode_tool_call_tags(text, calls):
    decoded = decode(text)
    assert decoded == decode(text, "tool_call_tags")
    assert decoded.ok and decoded.calls == calls


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "f"}\n</tool_call>',  # BFCL's decoder raises: no arguments
    '<tool_call>\n{"arguments": {}}\n</tool_call>',  # ... no name
    '<tool_call>\n{"name": "f", "arguments": "{\\"a\\": 1}"}\n</tool_call>',  # ... arguments not an object
    "x" * 200_001,
])
def test_decode_tool_call_tags_failures(text):
    decoded = decode(text)
    assert decoded.calls is None and decoded.error_type == "ast_decoder:decoder_failed" and decoded.error


def test_decode_rejects_unknown_format_and_non_text():
    with pytest.raises(ValueError):
        decode("[]", "xml")  # type: ignore[arg-type]
    assert decode(None).calls is None  # type: ignore[arg-type]
    assert decode(b"[f()]", "python").calls is None  # type: ignore[arg-type]


@pytest.mark.slow
def test_decoding_is_fast_on_huge_input():
    # CPU time, not wall time: on a loaded machine the wall clock also counts other processes' turns.
    started = time.process_time()
    for text in ("[" * 100_000, "f(a='" + "x" * 190_000 + "')", "[" + "f(a=1), " * 20_000 + "]"):
        decode(text, "python")
        decode(text)
    assert time.process_time() - started < 5


@pytest.mark.parametrize(
    "calls",
    [
        [{"f": {"a": 1, "b": "x'y", "c": [1.5, None, True], "d": {"k": (1, 2)}}}],
        [{"m.n": {}}, {"g": {"s": "</tool_call>", "e": -3}}],
    ],
)
def test_encoders_round_trip(calls):
    assert decode(encode_python(calls), "python").calls == calls
    assert decode(encode_tool_call_tags(calls)).calls == json.loads(json.dumps(calls))  # JSON has no tuples


def test_encoding_no_calls():
    assert decode(encode_tool_call_tags([])).calls == []
    assert encode_python([]) == "[]" and decode("[]", "python").calls is None  # as BFCL: no call


@pytest.mark.parametrize(
    "calls",
    [[{"f": {"from": 1}}], [{"f-g": {}}], [{"f": {"a": float("nan")}}], [{"f": {"a": {1, 2}}}], [{"f": 1}], ["f"]],
)
def test_encode_python_refuses_what_it_cannot_write(calls):
    with pytest.raises(ValueError):
        encode_python(calls)


# ---------------------------------------------------------------------------------------------
# The "bfcl" comparison mode of looptool.calls


def C(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


BFCL_MATCH = [
    ([C("f", a=1, b="x")], [C("f", a=1, b="x")], True),
    ([C("f", s="New York, NY")], [C("f", s="new york ny")], True),
    ([C("f", x=2)], [C("f", x=2.0)], True),  # int where a float is expected
    ([C("f", x=2.0)], [C("f", x=2)], False),  # but not the other way round
    ([C("f", x=True)], [C("f", x=1)], False),
    ([C("f", x=1)], [C("f", x=True)], False),
    ([C("f", x=[1, 2])], [C("f", x=[2, 1])], False),
    ([C("f", x=[1, 2])], [C("f", x=[1.0, 2.0])], False),  # ints inside a float list, as BFCL
    ([C("f", x=["A b"])], [C("f", x=["ab"])], True),
    ([C("f", d={"k": "V a", "n": 1})], [C("f", d={"n": 1, "k": "va"})], True),
    ([C("f", d={"k": "v"})], [C("f", d={"k": "v", "n": 1})], False),
    ([C("f", l=[{"k": "A"}, {"k": "b"}])], [C("f", l=[{"k": "a"}, {"k": "b"}])], True),
    ([C("f", a=None)], [C("f", a=None)], True),
    ([C("f", a="None")], [C("f", a=None)], False),
    ([C("f", a="")], [C("f", a="")], True),
    ([C("f")], [C("f", a="")], False),  # no optional parameters without docs
    ([C("f", a=1, b=2)], [C("f", a=1)], False),
    ([C("g", a=1)], [C("f", a=1)], False),
    ([C("f", a=1), C("g")], [C("g"), C("f", a=1)], True),
    ([C("f", a="x"), C("f", a="y")], [C("f", a="y"), C("f", a="x")], True),
    ([C("f"), C("f")], [C("f")], False),
    ([], [], True),
]


@pytest.mark.parametrize("predicted,expected,same", BFCL_MATCH)
def test_bfcl_match_mode(predicted, expected, same):
    assert calls_match_bfcl(predicted, expected) is same


def test_bfcl_rules_in_label_matching():
    def bfcl_label_matches(parse, label):  # label_matches with BFCL's rules for a call label
        return parse.ok and parse.status == "calls" and calls_match_bfcl(parse.calls, label.calls)

    label = Label(calls=[C("get_weather", city="Paris")])
    assert bfcl_label_matches(parse_calls("[get_weather(city='paris')]"), label)
    assert not label_matches(parse_calls("[get_weather(city='paris')]"), label)
    assert not bfcl_label_matches(parse_calls("No call."), label)
