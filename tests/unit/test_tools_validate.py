"""Spec validation with hand-written bad specs, and structured argument errors."""

import pytest

from looptool.schema import ToolCall, ToolSpec
from looptool.tools_sim.validate import argument_errors, spec_problems

GOOD = {
    "name": "book_hotel",
    "description": "Book a hotel room.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "nights": {"type": "integer", "description": "Nights.", "minimum": 1, "maximum": 30},
            "room": {"type": "string", "description": "Room type.", "enum": ["single", "double"], "default": "single"},
            "check_in": {"type": "string", "description": "Date.", "format": "date"},
            "guests": {
                "type": "array",
                "description": "Guests.",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "description": "Name."}},
                    "required": ["name"],
                },
            },
        },
        "required": ["city", "nights"],
    },
}


def spec_with(path: list[str], value) -> ToolSpec:
    import copy

    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return ToolSpec.model_validate(data)


def test_good_spec_has_no_problems():
    assert spec_problems(ToolSpec.model_validate(GOOD)) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (["name"], "BookHotel", "function name 'BookHotel' is not snake_case"),
        (["description"], "  ", "function has no description"),
        (["parameters", "properties", "city", "description"], KeyError, "parameters.city: no description"),
        (["parameters", "properties", "room", "enum"], [], "parameters.room: enum is empty"),
        (["parameters", "properties", "room", "enum"], ["a", "a"], "parameters.room: enum has repeated values"),
        (["parameters", "properties", "room", "enum"], ["only"], "parameters.room: enum has a single value"),
        (["parameters", "properties", "room", "default"], "suite", "parameters.room: default 'suite' is invalid"),
        (["parameters", "properties", "nights", "minimum"], 50, "parameters.nights: minimum 50 > maximum 30"),
        (["parameters", "properties", "guests", "items", "required"], ["age"], "parameters.guests[]: required 'age' is not a property"),
        (["parameters", "properties", "guests", "items", "properties", "name", "description"], "", "parameters.guests[].name: no description"),
    ],
)
def test_bad_specs_are_named(path, value, problem):
    problems = spec_problems(spec_with(path, value))
    assert any(p.startswith(problem) for p in problems), problems


def test_lenient_mode_keeps_only_what_makes_a_spec_unusable():
    assert spec_problems(spec_with(["name"], "BookHotel"), strict=False) == []
    assert spec_problems(spec_with(["parameters", "properties", "room", "default"], "suite"), strict=False) == []
    assert spec_problems(spec_with(["parameters", "properties", "room", "enum"], []), strict=False) == [
        "parameters.room: enum is empty"
    ]


SPEC = ToolSpec.model_validate(GOOD)


def kinds(arguments, name="book_hotel"):
    return sorted((e.kind, e.path) for e in argument_errors(SPEC, ToolCall(name=name, arguments=arguments)))


def test_valid_arguments_have_no_errors():
    assert kinds({"city": "Oslo", "nights": 2, "room": "double", "check_in": "2026-12-01", "guests": [{"name": "Ann"}]}) == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"nights": 2}, [("missing_required", "city")]),
        ({"city": "Oslo", "nights": 2, "pets": True}, [("unknown_param", "")]),
        ({"city": "Oslo", "nights": "two"}, [("wrong_type", "nights")]),
        ({"city": "Oslo", "nights": True}, [("wrong_type", "nights")]),
        ({"city": "Oslo", "nights": 2, "room": "suite"}, [("enum", "room")]),
        ({"city": "Oslo", "nights": 31}, [("range", "nights")]),
        ({"city": "Oslo", "nights": 2, "check_in": "next week"}, [("format", "check_in")]),
        ({"city": "Oslo", "nights": 2, "guests": [{"age": 3}]}, [("missing_required", "guests/0/name"), ("unknown_param", "guests/0")]),
    ],
)
def test_argument_errors_are_structured(arguments, expected):
    assert kinds(arguments) == expected


def test_calling_another_tool_is_an_unknown_tool_error():
    assert kinds({"city": "Oslo"}, name="book_flight") == [("unknown_tool", "")]
