"""Tests for looptool.training.reward: the GRPO reward built on the one parser/matcher."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from looptool.calls import format_calls, label_matches, parse_calls
from looptool.schema import Label, ToolCall
from looptool.training.reward import (
    REWARDS,
    binary_reward,
    completion_text,
    parse_label,
    partial_reward,
    reward_function,
)


def C(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def L(*calls: ToolCall) -> Label:
    return Label(calls=list(calls))


def tags(*calls: ToolCall) -> str:
    return format_calls(list(calls), "tool_call_tags")


NO_CALL = Label(text="Which city do you mean?")
WEATHER = C("get_weather", city="Paris", unit="celsius")
TIME = C("get_time", tz="Europe/Paris")


def assistant(content) -> list[dict]:
    return [{"role": "assistant", "content": content}]


# ---------------------------------------------------------------------------------------------
# Binary reward: the tricky cases

BINARY = [
    ("exact match", tags(WEATHER), L(WEATHER), 1.0),
    ("calls in another order", tags(TIME, WEATHER), L(WEATHER, TIME), 1.0),
    ("duplicates: two expected, one predicted", tags(WEATHER), L(WEATHER, WEATHER), 0.0),
    ("duplicates: two expected, two predicted", tags(WEATHER, WEATHER), L(WEATHER, WEATHER), 1.0),
    ("duplicates: one expected, two predicted", tags(WEATHER, WEATHER), L(WEATHER), 0.0),
    ("list argument in another order", tags(C("f", xs=[2, 1])), L(C("f", xs=[1, 2])), 0.0),
    ("list argument in the same order", tags(C("f", xs=[1, 2])), L(C("f", xs=[1, 2])), 1.0),
    ("argument keys in another order", tags(C("f", b=2, a=1)), L(C("f", a=1, b=2)), 1.0),
    ("1 equals 1.0", tags(C("f", n=1.0)), L(C("f", n=1)), 1.0),
    ("1.0 equals 1", tags(C("f", n=1)), L(C("f", n=1.0)), 1.0),
    ("True is not 1", tags(C("f", flag=True)), L(C("f", flag=1)), 0.0),
    ("1 is not True", tags(C("f", flag=1)), L(C("f", flag=True)), 0.0),
    ("string '1' is not 1", tags(C("f", n="1")), L(C("f", n=1)), 0.0),
    ("wrong name", tags(C("get_wether", city="Paris", unit="celsius")), L(WEATHER), 0.0),
    ("wrong argument value", tags(C("get_weather", city="Lyon", unit="celsius")), L(WEATHER), 0.0),
    ("missing argument", tags(C("get_weather", city="Paris")), L(WEATHER), 0.0),
    ("extra call", tags(WEATHER, TIME), L(WEATHER), 0.0),
    ("missing call", tags(WEATHER), L(WEATHER, TIME), 0.0),
    ("think block before the call", "<think>Paris, so get_weather.</think>\n" + tags(WEATHER), L(WEATHER), 1.0),
    ("think closed only (opened in prompt)", "need the weather</think>\n" + tags(WEATHER), L(WEATHER), 1.0),
    ("prose around the call", "Let me check.\n" + tags(WEATHER) + "\nOne moment.", L(WEATHER), 1.0),
    ("python-style call", "[get_weather(city='Paris', unit='celsius')]", L(WEATHER), 1.0),
    ("bare JSON call", json.dumps({"name": "get_weather", "arguments": WEATHER.arguments}), L(WEATHER), 1.0),
    ("no-call label, text answer", "Which city do you mean?", NO_CALL, 1.0),
    ("no-call label, different text", "Could you tell me the city?", NO_CALL, 1.0),
    ("no-call label, empty answer", "", NO_CALL, 1.0),
    ("no-call label, answer with a call", tags(WEATHER), NO_CALL, 0.0),
    ("no-call label, truncated call", "<tool_call>{", NO_CALL, 0.0),
    ("truncated call", "<tool_call>{", L(WEATHER), 0.0),
    ("truncated JSON in a closed block", '<tool_call>{"name": "get_weather", </tool_call>', L(WEATHER), 0.0),
    ("unterminated think", "<think>let me see", L(WEATHER), 0.0),
    ("good call then a broken block", tags(WEATHER) + "\n<tool_call>{", L(WEATHER), 0.0),
    ("plain text where a call is expected", "It is sunny in Paris.", L(WEATHER), 0.0),
    # Conversational completions (TRL: a list of message dicts)
    ("messages: assistant content", assistant(tags(WEATHER)), L(WEATHER), 1.0),
    ("messages: content parts", assistant([{"type": "text", "text": tags(WEATHER)}]), L(WEATHER), 1.0),
    (
        "messages: content split over parts",
        assistant([{"type": "text", "text": "<tool_call>\n"}, {"type": "text", "text": tags(WEATHER)[12:]}]),
        L(WEATHER),
        1.0,
    ),
    ("messages: None content, no-call label", assistant(None), NO_CALL, 1.0),
    ("messages: None content, call label", assistant(None), L(WEATHER), 0.0),
    ("messages: text answer, no-call label", assistant("Which city?"), NO_CALL, 1.0),
    ("single message dict", {"role": "assistant", "content": tags(WEATHER)}, L(WEATHER), 1.0),
    (
        "messages: structured tool_calls (tokenizer-parsed response)",
        [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": WEATHER.arguments}},
            {"type": "function", "function": {"name": "get_time", "arguments": TIME.arguments}},
        ]}],
        L(TIME, WEATHER),
        1.0,
    ),
    (
        "messages: structured tool_calls with wrong arguments",
        [{"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        ]}],
        L(WEATHER),
        0.0,
    ),
    (
        "messages: structured tool_calls on a no-call label",
        [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
        NO_CALL,
        0.0,
    ),
    (
        "messages: the non-assistant messages are ignored",
        [{"role": "tool", "content": tags(TIME)}, {"role": "assistant", "content": tags(WEATHER)}],
        L(WEATHER),
        1.0,
    ),
]


@pytest.mark.parametrize("completion,label,expected", [c[1:] for c in BINARY], ids=[c[0] for c in BINARY])
def test_binary_reward(completion, label, expected):
    assert binary_reward(completion, label) == expected
    assert type(binary_reward(completion, label)) is float


@pytest.mark.parametrize("completion,label,expected", [c[1:] for c in BINARY], ids=[c[0] for c in BINARY])
def test_binary_is_the_matcher(completion, label, expected):
    """The reward is the probe's test: calls.label_matches on calls.parse_calls."""
    assert binary_reward(completion, label) == float(label_matches(parse_calls(completion_text(completion)), label))


@pytest.mark.parametrize("form", [lambda x: x, lambda x: x.model_dump(), lambda x: x.model_dump_json()])
def test_label_forms_agree(form):
    for label in (L(WEATHER, TIME), NO_CALL):
        assert parse_label(form(label)) == label
    assert binary_reward(tags(TIME, WEATHER), form(L(WEATHER, TIME))) == 1.0
    assert binary_reward("ok", form(NO_CALL)) == 1.0


# ---------------------------------------------------------------------------------------------
# Partial reward

PARTIAL = [
    ("exact match", tags(WEATHER), L(WEATHER), 1.0),
    ("calls in another order", tags(TIME, WEATHER), L(WEATHER, TIME), 1.0),
    ("right name, wrong arguments", tags(C("get_weather", city="Lyon")), L(WEATHER), 0.5),
    ("wrong name", tags(C("get_wether", **WEATHER.arguments)), L(WEATHER), 0.0),
    ("one of two calls right, other missing", tags(WEATHER), L(WEATHER, TIME), 0.5),
    ("one of two calls right, other wrong args", tags(WEATHER, C("get_time", tz="UTC")), L(WEATHER, TIME), 0.75),
    ("both names right, both args wrong", tags(C("get_weather"), C("get_time")), L(WEATHER, TIME), 0.5),
    ("extra duplicate call", tags(WEATHER, WEATHER), L(WEATHER), 0.5),
    ("duplicates: two expected, one predicted", tags(WEATHER), L(WEATHER, WEATHER), 0.5),
    ("extra unrelated call", tags(WEATHER, C("h")), L(WEATHER), 0.5),
    ("True vs 1", tags(C("f", flag=True)), L(C("f", flag=1)), 0.5),
    ("1 vs 1.0", tags(C("f", n=1.0)), L(C("f", n=1)), 1.0),
    ("parse failure", "<tool_call>{", L(WEATHER), 0.0),
    ("parse failure after a right call", tags(WEATHER) + "<tool_call>{", L(WEATHER), 0.0),
    ("plain text where a call is expected", "Sunny.", L(WEATHER), 0.0),
    ("no-call label, text answer", "Which city?", NO_CALL, 1.0),
    ("no-call label, a call", tags(WEATHER), NO_CALL, 0.0),
    ("no-call label, parse failure", "<tool_call>{", NO_CALL, 0.0),
    ("conversational, right name", assistant(tags(C("get_weather"))), L(WEATHER), 0.5),
]


@pytest.mark.parametrize("completion,label,expected", [c[1:] for c in PARTIAL], ids=[c[0] for c in PARTIAL])
def test_partial_reward(completion, label, expected):
    assert partial_reward(completion, label) == pytest.approx(expected)
    assert (partial_reward(completion, label) == 1.0) == (binary_reward(completion, label) == 1.0)


def test_partial_orderings():
    label = L(WEATHER, TIME)
    exact = partial_reward(tags(TIME, WEATHER), label)
    one_arg_wrong = partial_reward(tags(WEATHER, C("get_time", tz="UTC")), label)
    names_right = partial_reward(tags(C("get_weather"), C("get_time")), label)
    names_wrong = partial_reward(tags(C("x"), C("y")), label)
    broken = partial_reward("<tool_call>{", label)
    assert exact == 1.0 > one_arg_wrong > names_right > names_wrong == broken == 0.0
    # A right answer plus an extra call ranks below the right answer alone.
    assert partial_reward(tags(WEATHER, TIME, C("h")), label) < exact


@pytest.mark.parametrize("completion,label,_", [c[1:] for c in BINARY], ids=[c[0] for c in BINARY])
def test_partial_is_one_iff_binary_is_one_table(completion, label, _):
    b, p = binary_reward(completion, label), partial_reward(completion, label)
    assert 0.0 <= p <= 1.0
    assert (p == 1.0) == (b == 1.0)
    assert p >= b


_VALUES = st.sampled_from([1, 1.0, 2, True, False, "1", None, [1, 2], [2, 1], {"k": 1}])
_CALLS = st.builds(
    lambda name, args: ToolCall(name=name, arguments=args),
    st.sampled_from(["f", "g"]),
    st.dictionaries(st.sampled_from(["a", "b"]), _VALUES, max_size=2),
)
_LABELS = st.one_of(st.just(NO_CALL), st.lists(_CALLS, min_size=1, max_size=3).map(lambda cs: L(*cs)))


@st.composite
def _answers(draw, label: Label):
    """Answers near the label: its calls shuffled, dropped, duplicated, mutated, or no call at all."""
    calls = list(label.calls)
    if calls and draw(st.booleans()):
        calls = draw(st.permutations(calls))
    ops = draw(st.lists(st.sampled_from(["drop", "dup", "mutate", "add"]), max_size=2))
    for op in ops:
        if op == "add" or not calls:
            calls.append(draw(_CALLS))
        elif op == "drop":
            calls.pop(draw(st.integers(0, len(calls) - 1)))
        elif op == "dup":
            calls.append(calls[draw(st.integers(0, len(calls) - 1))])
        else:
            calls[draw(st.integers(0, len(calls) - 1))] = draw(_CALLS)
    style = draw(st.sampled_from(["tool_call_tags", "json", "text", "broken"]))
    if style == "text" or not calls:
        return "Sure, here you go."
    if style == "broken":
        return format_calls(calls, "tool_call_tags") + "\n<tool_call>{"
    return format_calls(calls, style)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_partial_is_one_iff_binary_is_one_property(data):
    label = data.draw(_LABELS)
    answer = data.draw(_answers(label))
    b, p = binary_reward(answer, label), partial_reward(answer, label)
    assert b in (0.0, 1.0)
    assert 0.0 <= p <= 1.0
    assert (p == 1.0) == (b == 1.0)
    if b == 0.0:
        assert p < 1.0


@settings(max_examples=30, deadline=None)
@given(_LABELS)
def test_label_itself_scores_one(label):
    answer = "No call needed." if label.is_no_call else tags(*reversed(label.calls))
    assert binary_reward(answer, label.model_dump_json()) == 1.0
    assert partial_reward(answer, label.model_dump_json()) == 1.0


def test_an_accepted_alternative_scores_like_the_label():
    other = C("get_weather", city="Paris", unit="fahrenheit")
    label = L(WEATHER).with_alternative(L(other))
    for answer in (tags(WEATHER), tags(other)):
        assert binary_reward(answer, label.model_dump_json()) == partial_reward(answer, label) == 1.0
    # Partial credit is taken against the closest accepted answer.
    near_other = tags(other, TIME)
    closest, farther = partial_reward(near_other, L(other)), partial_reward(near_other, L(WEATHER))
    assert partial_reward(near_other, label) == closest > farther
    assert binary_reward(near_other, label) == 0.0
    # A no-call alternative accepts any text; a call still needs a matching call answer.
    either = L(WEATHER).with_alternative(NO_CALL)
    assert binary_reward("Which city?", either) == 1.0 and partial_reward(tags(TIME), either) == 0.0


# ---------------------------------------------------------------------------------------------
# The TRL-style batch function


def test_trl_function_mixed_batch():
    fn = reward_function("binary")
    assert fn.__name__ == "tool_call_reward"
    completions = [
        tags(WEATHER),  # right
        tags(TIME),  # wrong call
        "Which city?",  # right: no call expected
        tags(WEATHER),  # wrong: no call expected
        "<tool_call>{",  # broken
        tags(TIME, WEATHER),  # right, other order
    ]
    labels = [L(WEATHER), L(WEATHER), NO_CALL, NO_CALL, L(WEATHER), L(WEATHER, TIME)]
    rewards = fn(
        prompts=["p"] * len(completions),
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        label=[x.model_dump_json() for x in labels],
        trainer_state=object(),
        scenario=["single"] * len(completions),  # other dataset columns are ignored
    )
    assert rewards == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert all(type(r) is float for r in rewards)


def test_trl_function_conversational_batch():
    fn = reward_function("partial")
    completions = [
        assistant(tags(WEATHER)),
        assistant([{"type": "text", "text": tags(C("get_weather", city="Lyon"))}]),
        assistant("Which city?"),
        [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "nope"}}]}],
    ]
    prompts = [[{"role": "user", "content": "weather?"}]] * 4
    labels = [L(WEATHER), L(WEATHER).model_dump(), NO_CALL.model_dump_json(), L(WEATHER)]
    assert fn(prompts=prompts, completions=completions, label=labels) == [1.0, 0.5, 1.0, 0.0]


def test_trl_function_logs_parse_errors_and_pickles():
    logged = []
    fn = reward_function("binary")
    labels = [L(WEATHER).model_dump_json()] * 4
    completions = [tags(WEATHER), "<tool_call>{", "text", "[f(]"]
    assert fn(completions=completions, label=labels, log_metric=lambda k, v: logged.append((k, v))) == [1, 0, 0, 0]
    assert logged == [("tool_call/parse_error_rate", 0.5)]
    clone = pickle.loads(pickle.dumps(fn))
    assert clone.__name__ == "tool_call_reward" and clone.kind == "binary"
    assert clone(completions=completions, label=labels) == [1.0, 0.0, 0.0, 0.0]


def test_rewards_registry():
    assert set(REWARDS) == {"binary", "partial"}
    assert reward_function().kind == "binary"  # binary is the default
    assert reward_function("partial").kind == "partial"
    assert reward_function("binary")(completions=[], label=[]) == []


# ---------------------------------------------------------------------------------------------
# Errors: a wrong wiring fails loudly


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"unknown reward kind 'dense'.*\['binary', 'partial'\]"):
        reward_function("dense")


def test_missing_label_column():
    fn = reward_function("binary")
    with pytest.raises(ValueError, match='needs a "label" column'):
        fn(prompts=["p"], completions=[tags(WEATHER)], completion_ids=[[1]])


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"completions": ["a", "b"], "label": [NO_CALL]}, "2 completions but 1 labels"),
        ({"prompts": ["p"], "completions": ["a", "b"], "label": [NO_CALL, NO_CALL]}, "2 completions but 1 prompts"),
        ({"completions": ["a"], "label": NO_CALL.model_dump_json()}, "must come as a list"),
        ({"label": [NO_CALL]}, "needs `completions`"),
        ({"completions": ["a", "b"], "label": [NO_CALL, "{not json"]}, "row 1: invalid label '{not json'"),
        ({"completions": ["a"], "label": [None]}, "row 0: a label must be"),
    ],
)
def test_batch_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        reward_function("binary")(**kwargs)


@pytest.mark.parametrize(
    "value,fragment",
    [
        ("{not json", "invalid label '{not json'"),
        ('{"calls": [], "text": null}', "needs calls or a no-call text"),
        ('{"calls": [{"name": "f", "arguments": 3}]}', "calls.0.arguments"),
        ({"calls": [{"name": "f"}], "text": "both"}, "either calls or a no-call text"),
        ({"call": []}, "invalid label"),
        (None, "got NoneType: None"),
        (42, "got int: 42"),
        ([{"name": "f"}], "got list"),
    ],
)
def test_parse_label_errors(value, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[").replace("{", r"\{")) as info:
        parse_label(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "completion,fragment",
    [
        (42, "got int"),
        (None, "got NoneType"),
        (b"<tool_call>", "got bytes"),
        (["just a string"], "must be dicts, got str"),
        ([], "no assistant message"),
        ([{"role": "user", "content": "hi"}], "no assistant message"),
        ({"role": "user", "content": "hi"}, "a 'user' message"),
        (assistant(42), "content must be a str, None or a list of parts"),
        (assistant([{"type": "image", "url": "x"}]), "content parts must be"),
        (assistant(["plain"]), "content parts must be"),
        ([{"role": "assistant", "content": "", "tool_calls": "f()"}], "tool_calls must be a list"),
        ([{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {1, 2}}]}], "not JSON"),
    ],
)
def test_non_text_completion(completion, fragment):
    with pytest.raises(TypeError, match=fragment) as info:
        completion_text(completion)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match=fragment):
        binary_reward(completion, NO_CALL)


def test_non_text_completion_in_batch_names_the_row():
    with pytest.raises(TypeError, match="completion 1: .*got int"):
        reward_function("partial")(completions=["ok", 7], label=[NO_CALL, NO_CALL])


def test_completion_text_forms():
    assert completion_text("abc") == "abc"
    assert completion_text({"content": "abc"}) == "abc"
    assert completion_text(assistant(None)) == ""
    assert completion_text(assistant([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])) == "ab"
    two = [
        {"role": "assistant", "content": "a"},
        {"role": "tool", "content": "t"},
        {"role": "assistant", "content": "b"},
    ]
    assert completion_text(two) == "a\nb"
    structured = completion_text([{"role": "assistant", "content": "Checking.", "tool_calls": [{"name": "f"}]}])
    assert structured.startswith("Checking.\n<tool_call>") and parse_calls(structured).calls == [C("f")]
