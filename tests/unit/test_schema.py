import re

import pytest
from pydantic import ValidationError

from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec, stable_id

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


def test_toolspec_from_and_to_openai():
    spec = ToolSpec.from_openai(WEATHER)
    assert spec.name == "get_weather"
    assert ToolSpec.from_openai(spec.to_openai()["function"]) == spec
    assert "returns" not in spec.to_openai()["function"]


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"type": "array"}, "parameters.type must be 'object'"),
        ({"type": "object", "properties": {}, "required": ["city"]}, "required names unknown properties: ['city']"),
        ({"type": "object", "properties": {"x": {"type": "strnig"}}}, "not a valid JSON Schema"),
        ({"type": "object", "properties": []}, "properties must be an object"),
    ],
)
def test_toolspec_rejects_bad_schemas(parameters, fragment):
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ToolSpec(name="f", parameters=parameters)


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 129, "semi;colon"])
def test_toolspec_rejects_bad_names(name):
    with pytest.raises(ValidationError, match="invalid tool name"):
        ToolSpec(name=name)


def test_label_is_calls_or_text_never_both_nor_neither():
    assert Label(calls=[ToolCall(name="f")]).is_no_call is False
    assert Label(text="Which city?").is_no_call is True
    with pytest.raises(ValidationError, match="not both"):
        Label(calls=[ToolCall(name="f")], text="x")
    with pytest.raises(ValidationError, match="needs calls or a no-call text"):
        Label()


def test_message_shape_rules():
    Message(role="assistant", tool_calls=[ToolCall(name="f", arguments={"a": 1})])
    with pytest.raises(ValidationError, match="only assistant messages carry tool_calls"):
        Message(role="user", content="x", tool_calls=[ToolCall(name="f")])
    with pytest.raises(ValidationError, match="a tool message needs content"):
        Message(role="tool")


def test_sample_id_is_stable_and_ignores_the_label():
    tools = [ToolSpec.from_openai(WEATHER)]
    messages = [Message(role="user", content="Weather in Oslo?")]
    a = Sample(messages=messages, tools=tools, label=Label(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]))
    b = Sample(messages=messages, tools=tools, label=Label(text="Which unit?"))
    c = Sample(messages=[Message(role="user", content="Weather in Lima?")], tools=tools, label=b.label)
    assert a.id == b.id != c.id
    assert a.id.startswith("s_")
    assert Sample.model_validate_json(a.model_dump_json()) == a


def test_stable_id_ignores_key_order():
    assert stable_id("t", {"a": 1, "b": 2}) == stable_id("t", {"b": 2, "a": 1})
    assert stable_id("t", {"a": 1}) != stable_id("t", {"a": 2})


def test_ids_matching_takes_an_exact_id_over_longer_ones_and_every_id_a_prefix_starts():
    from looptool.schema import ids_matching

    ids = ["d_ab", "d_abc", "d_b"]
    assert ids_matching("d_ab", ids) == ["d_ab"]  # exact wins over d_abc
    assert ids_matching("d_a", ids) == ["d_ab", "d_abc"]  # ambiguous: both named
    assert ids_matching("d_abc", ids) == ["d_abc"]
    assert ids_matching("x", ids) == []
