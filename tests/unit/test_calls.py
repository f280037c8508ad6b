"""Tests for looptool.calls: the single parser/matcher every stage relies on."""

from __future__ import annotations

import keyword
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from looptool.calls import (
    ParseResult,
    calls_match,
    diff_calls,
    format_calls,
    label_matches,
    parse_calls,
)
from looptool.schema import Label, ToolCall


def C(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


# ---------------------------------------------------------------------------------------------
# Parsing: formats that must succeed

PARSE_OK = [
    # <tool_call> blocks
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "tool_call_tags", [C("f", a=1)]),
    (
        '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n'
        '<tool_call>{"name": "g", "arguments": {}}</tool_call>',
        "tool_call_tags",
        [C("f", a=1), C("g")],
    ),
    (
        '<tool_call>[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": "x"}}]</tool_call>',
        "tool_call_tags",
        [C("f", a=1), C("g", b="x")],
    ),
    ('<tool_call>{"name": "f", "arguments": "{\\"a\\": [1, 2]}"}</tool_call>', "tool_call_tags", [C("f", a=[1, 2])]),
    ('<tool_call>{"name": "f", "parameters": {"a": null}}</tool_call>', "tool_call_tags", [C("f", a=None)]),
    (
        '<think>I should call f. Maybe <tool_call> it?</think>\nSure, calling now.\n'
        '<tool_call>\n{"name": "f", "arguments": {"q": "</tool_call>"}}\n</tool_call>\nDone.',
        "tool_call_tags",
        [C("f", q="</tool_call>")],
    ),
    ('reasoning only in prompt</think><tool_call>{"name": "f", "arguments": {}}</tool_call>', "tool_call_tags", [C("f")]),
    # "</think>" inside an argument of an answer that opens as a call is a value, not a reasoning end
    ('[{"name": "f", "arguments": {"a": "</think>"}}]', "json", [C("f", a="</think>")]),
    ('<tool_call>{"name": "f", "arguments": {"a": "x</think>"}}</tool_call>', "tool_call_tags", [C("f", a="x</think>")]),
    ('f(a="</think>")', "python", [C("f", a="</think>")]),
    # bare JSON
    ('{"name": "f", "arguments": {"a": 1.5}}', "json", [C("f", a=1.5)]),
    ('[{"name": "f", "arguments": {}}, {"name": "f", "arguments": {}}]', "json", [C("f"), C("f")]),
    ('```json\n{"name": "f", "arguments": {"a": true}}\n```', "json", [C("f", a=True)]),
    ('```\n[{"name": "f", "arguments": {}}]\n```', "json", [C("f")]),
    ('{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 2}"}}', "json", [C("f", a=2)]),
    (
        '{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", '
        '"function": {"name": "f", "arguments": "{}"}}]}',
        "json",
        [C("f")],
    ),
    # python
    (
        '[math.factorial(n=5), g.h(b="x", c=-3, d=-2.5, e=+1)]',
        "python",
        [C("math.factorial", n=5), C("g.h", b="x", c=-3, d=-2.5, e=1)],
    ),
    ("f(a=[1, [2, 3]], b={'k': {'z': None}}, c=(1, 2), d=True)", "python",
     [C("f", a=[1, [2, 3]], b={"k": {"z": None}}, c=[1, 2], d=True)]),
    ("```python\n[f(a='x')]\n```", "python", [C("f", a="x")]),
    ("  get_weather(city='Paris')  \n", "python", [C("get_weather", city="Paris")]),
    ("[f()]", "python", [C("f")]),
]


@pytest.mark.parametrize("text,fmt,calls", PARSE_OK)
def test_parse_ok(text, fmt, calls):
    result = parse_calls(text)
    assert result.status == "calls", result.error
    assert result.ok and not result.is_no_call and result.error is None
    assert result.format == fmt
    assert result.calls == calls


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t", "Hello! How can I help?", "The capital is Paris (France).", "<think>hmm</think>\nNo tool needed."],
)
def test_plain_text_is_no_call(text):
    result = parse_calls(text)
    assert result.status == "no_call" and result.is_no_call and result.ok
    assert result.calls == [] and result.error is None


@pytest.mark.parametrize("text", ["[]", '{"tool_calls": []}'])
def test_explicit_empty_list_is_no_call(text):
    assert parse_calls(text).status == "no_call"


PARSE_ERR = [
    ("[f(1)]", "positional"),
    ("f(1, a=2)", "positional"),
    ("<tool_call>{bad json", "unclosed"),
    ("<tool_call>{bad json</tool_call>", "invalid JSON"),
    ('<tool_call>{"name": "f", "arguments": {}}', "unclosed"),
    ('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{"name": "g"', "unclosed"),
    ('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>oops</tool_call>', "invalid JSON"),
    ("<tool_call>[]</tool_call>", "empty"),
    ("f(x=g(1))", "nested calls"),
    ("f(x=y)", "bare name"),
    ("f(x=true)", "bare name"),
    ("f(**kw)", "kwargs"),
    ("f(x={1: 2})", "string constants"),
    ("f(x=b'a')", "unsupported constant"),
    ("f(x=1+2)", "unsupported"),
    ("f(a=1, a=2)", ""),
    ("f(a=1) and then some text", "invalid Python"),
    ('{"name": "f", "args": {"a": 1}}', "unexpected keys"),
    ('{"name": "", "arguments": {}}', "non-empty"),
    ('{"name": "f", "arguments": [1]}', "must be an object"),
    ('{"name": "f", "arguments": "not json"}', "not valid JSON"),
    ('{"name": "f", "arguments": {}, "parameters": {}}', "both"),
    ("[1, 2]", "must be an object"),
    ("{not json", "invalid JSON"),
    ("[Note] this starts with a bracket", "invalid JSON"),
    ('{"name": "f"}</tool_call>', ""),
    ("<think>truncated reasoning", "unterminated"),
    ("x" * 200_001, "too long"),
]


@pytest.mark.parametrize("text,fragment", PARSE_ERR)
def test_parse_error(text, fragment):
    result = parse_calls(text)
    assert result.status == "error" and not result.ok and result.calls == []
    assert result.error and "\n" not in result.error
    assert fragment.lower() in result.error.lower()


def test_never_executes_code(monkeypatch):
    ran = []
    monkeypatch.setattr(os, "system", lambda cmd: ran.append(cmd))
    result = parse_calls("__import__('os').system('echo pwned')")
    assert result.status == "error" and "name" in result.error
    result = parse_calls("[f(a=__import__('sys').modules.__setitem__('pwned_calls', 1))]")
    assert result.status == "error"
    assert ran == [] and "pwned_calls" not in sys.modules


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "f(a=" + "[" * 5_000 + "]" * 5_000 + ")",
        "f(a=" + "[" * 90 + "]" * 90 + ")",
        "<tool_call>" + "[" * 100_000 + "</tool_call>",
        '{"name": "f", "arguments": {"a": ' + "[" * 500 + "]" * 500 + "}}",
        "a" + ".b" * 50_000 + "(x=1)",
        "f(a='\x00')\x00",
        "\ud800\udfff<tool_call>\x00",
    ],
)
def test_hostile_input_is_error_not_exception(text):
    result = parse_calls(text)
    assert result.status == "error"
    _check_result(parse_calls("(" * 100_000))  # not call-shaped: plain text, but must not raise


def test_parse_non_str_is_error():
    assert parse_calls(None).status == "error"  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Matching


def test_match_is_order_insensitive_across_calls():
    assert calls_match([C("f", a=1), C("g")], [C("g"), C("f", a=1)])


def test_match_is_order_sensitive_inside_lists():
    assert not calls_match([C("f", a=[1, 2])], [C("f", a=[2, 1])])


def test_match_counts_duplicates():
    assert not calls_match([C("f"), C("f")], [C("f")])
    assert not calls_match([C("f"), C("g")], [C("f"), C("f")])
    assert calls_match([C("f"), C("f")], [C("f"), C("f")])


def test_match_numbers_and_bools():
    assert calls_match([C("f", a=1, b={"c": [2.0]})], [C("f", a=1.0, b={"c": [2]})])
    assert not calls_match([C("f", a=True)], [C("f", a=1)])
    assert not calls_match([C("f", a=0)], [C("f", a=False)])
    assert not calls_match([C("f", a=1.5)], [C("f", a=1)])
    assert not calls_match([C("f", a="1")], [C("f", a=1)])
    assert not calls_match([C("f", a=1)], [C("g", a=1)])
    assert not calls_match([C("f", a=None)], [C("f")])


def test_label_matches():
    no_call = Label(text="I can't do that.")
    call_label = Label(calls=[C("f", a=1)])
    assert label_matches(parse_calls("Sorry, no tool fits."), no_call)
    assert not label_matches(parse_calls("f(a=1)"), no_call)
    assert label_matches(parse_calls("f(a=1.0)"), call_label)
    assert not label_matches(parse_calls("Sorry."), call_label)
    assert not label_matches(parse_calls("f(a=2)"), call_label)
    bad = parse_calls("<tool_call>{")
    assert not label_matches(bad, no_call) and not label_matches(bad, call_label)


def test_diff_calls():
    diff = diff_calls([C("f", a=1), C("f", a=1), C("h")], [C("f", a=1.0), C("g")])
    assert diff == {"missing": [C("g")], "extra": [C("f", a=1), C("h")]}
    assert diff_calls([C("f")], [C("f")]) == {"missing": [], "extra": []}


# ---------------------------------------------------------------------------------------------
# Properties

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}(\.[a-z_][a-z0-9_]{0,5})?", fullmatch=True)
KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8
)


def _py_ok(name: str) -> bool:
    return not any(keyword.iskeyword(part) for part in name.split("."))


def tool_calls(python_safe: bool = False):
    names = NAMES.filter(_py_ok) if python_safe else NAMES
    keys = KEYS.filter(_py_ok) if python_safe else KEYS
    call = st.builds(lambda n, a: ToolCall(name=n, arguments=a), names, st.dictionaries(keys, VALUES, max_size=3))
    return st.lists(call, max_size=4)


def _assert_round_trip(calls, style):
    result = parse_calls(format_calls(calls, style))
    assert result.ok, result.error
    assert result.calls == calls
    assert calls_match(result.calls, calls)  # also catches True/1 confusions that == misses
    assert result.status == ("calls" if calls else "no_call")


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(tool_calls())
def test_round_trip_tags(calls):
    _assert_round_trip(calls, "tool_call_tags")


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(tool_calls())
def test_round_trip_json(calls):
    _assert_round_trip(calls, "json")


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(tool_calls(python_safe=True))
def test_round_trip_python(calls):
    _assert_round_trip(calls, "python")


def test_format_python_rejects_unrepresentable():
    for call in [C("f", a=float("nan")), C("f", a=float("inf")), C("if"), ToolCall(name="f", arguments={"class": 1})]:
        with pytest.raises(ValueError):
            format_calls([call], "python")


def _check_result(result: ParseResult):
    assert isinstance(result, ParseResult)
    assert result.status in ("calls", "no_call", "error")
    assert (result.status == "error") == (result.error is not None)
    assert result.status == "calls" or result.calls == []
    assert all(isinstance(c, ToolCall) for c in result.calls)


@settings(max_examples=200, deadline=None)
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_parse_never_raises_on_text(text):
    _check_result(parse_calls(text))


FRAGMENTS = st.sampled_from(
    ["<tool_call>", "</tool_call>", "<think>", "</think>", "{", "}", "[", "]", "(", ")", "=", '"', "'",
     ":", ",", "name", "arguments", "f", "a.b", "1", "-", "true", "None", " ", "\n", "```", "json", "\\"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(FRAGMENTS, max_size=30).map("".join))
def test_parse_never_raises_on_fragments(text):
    _check_result(parse_calls(text))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_match_reflexive_and_permutation_invariant(data):
    calls = data.draw(tool_calls())
    shuffled = data.draw(st.permutations(calls))
    assert calls_match(calls, calls)
    assert calls_match(shuffled, calls) and calls_match(calls, shuffled)
    assert diff_calls(shuffled, calls) == {"missing": [], "extra": []}
