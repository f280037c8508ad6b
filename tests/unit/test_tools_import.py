"""Importers: every accepted format, BFCL without loss, whole-file rejection, random JSON."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from looptool.cli import app
from looptool.schema import stable_id
from looptool.store import Store
from looptool.tools_sim.importers import ToolImportError, load_tools_file, parse_tools, parse_tools_text

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench" / "bfcl_v3"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_openai_mcp_and_plain_formats():
    openai = [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": SCHEMA}}]
    assert parse_tools(openai).format == "openai"
    assert parse_tools({"tools": openai}).specs[0].name == "weather"
    mcp = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "weather", "description": "d", "inputSchema": {"$schema": "x", **SCHEMA}, "outputSchema": {"type": "object"}}
    ]}}  # fmt: skip
    imported = parse_tools(mcp)
    assert imported.format == "mcp" and imported.specs[0].parameters == SCHEMA and imported.specs[0].returns == {"type": "object"}
    plain = parse_tools([{"name": "weather", "description": "d", "parameters": SCHEMA}])
    assert plain.format == "functions" and plain.specs == parse_tools(openai).specs


def test_bfcl_types_are_mapped_to_json_schema():
    doc = {"name": "math.mean", "description": "d", "parameters": {"type": "dict", "properties": {
        "xs": {"type": "array", "items": {"type": "float"}, "description": "x"},
        "pair": {"type": "tuple", "items": {"type": "integer"}, "description": "p"},
        "opts": {"type": "dict", "properties": {"any_value": {"type": "any", "description": "a"}}},
        "flag": {"type": "boolean", "optional": True, "default": "false"},
    }, "required": ["xs"]}}  # fmt: skip
    spec = parse_tools([doc]).specs[0]
    props = spec.parameters["properties"]
    assert spec.parameters["type"] == "object"
    assert props["xs"]["items"]["type"] == "number" and props["pair"]["type"] == "array"
    assert props["opts"]["type"] == "object" and "type" not in props["opts"]["properties"]["any_value"]
    assert "optional" not in props["flag"]


@pytest.mark.slow
@pytest.mark.parametrize("category", ["simple", "multiple", "java", "javascript"])
def test_bfcl_files_import_without_loss(category, workspace, runner):
    path = BENCH / f"BFCL_v3_{category}.json"
    docs = [doc for line in path.read_text().splitlines() if line.strip() for doc in json.loads(line)["function"]]
    imported = load_tools_file(path)
    assert imported.format == "bfcl" and len(imported.specs) == len(docs)
    assert [s.name for s in imported.specs] == [d["name"] for d in docs]
    first: dict[str, object] = {}  # the first doc of each name, as the import keeps them
    for spec in imported.specs:
        first.setdefault(spec.name, spec)
    clashes = sum(1 for s in imported.specs if s != first[s.name])
    if clashes:
        # Some of BFCL's files give one name several docs; a workspace holds one spec per name, so
        # a plain import is refused whole and names the flag that imports them.
        result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace)])
        assert result.exit_code == 1 and "already in the workspace with a different spec" in result.output
        assert "--on-duplicate skip" in result.output
        with Store.open(workspace / "looptool.db") as store:
            assert store.counts()["tools"] == 0
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace), "--on-duplicate", "skip"])
    assert result.exit_code == 0, result.output
    assert f"read {len(docs)} bfcl tool definitions" in result.output
    assert (f"skipped {clashes} whose name" in result.output) == bool(clashes), result.output
    with Store.open(workspace / "looptool.db") as store:
        records = store.tool_records()
        assert sorted(r["name"] for r in records) == sorted(first)  # one spec per name
        for spec in first.values():  # the first doc of each name is stored, exactly as converted
            assert store.get_tool(stable_id("t", spec.model_dump())) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: invalid JSON"),
        ("{\"tools\": 3}", "tools: expected a list of tools, got int"),
        ("[]", "the list of tools is empty"),
        ("[{\"name\": \"\"}]", "[0].name: expected a non-empty string"),
        ("[{\"name\": \"f\", \"parameters\": {\"type\": \"array\"}}]", "[0].parameters: Value error, parameters.type must be 'object'"),
        ("[{\"name\": \"f\", \"parameters\": {\"type\": \"dict\", \"properties\": {\"a\": {\"type\": \"complex\"}}}}]",
         "[0].parameters.properties.a.type: unknown BFCL type 'complex'"),
        ("[{\"type\": \"function\", \"function\": 3}]", "[0].function: expected"),
        ("{\"id\": 1, \"question\": [], \"function\": []}\n{\"id\": 2, \"question\": [], \"function\": [{\"name\": 5}]}",
         "line 2: function[0].name: expected a non-empty string, got 5"),
        ("{\"id\": 1, \"function\": []}\n{not json",  "line 2: invalid JSON"),
    ],
)
def test_bad_files_are_rejected_with_where_and_why(text, message):
    with pytest.raises(ToolImportError) as info:
        parse_tools_text(text, "tools.json")
    assert str(info.value).startswith("tools.json: ") and message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_file_stores_nothing(workspace, runner, tmp_path):
    good = {"name": "ok_tool", "description": "d", "parameters": SCHEMA}
    bad = {"name": "bad_tool", "parameters": {"type": "object", "properties": {"x": {"type": "string", "enum": []}}}}
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([good, bad]))
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace)])
    assert result.exit_code == 1 and "[1]: parameters.x: enum is empty" in result.output
    with Store.open(workspace / "looptool.db") as store:
        assert store.counts()["tools"] == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["name", "type", "function", "tools", "parameters", "properties", "inputSchema",
                                       "description", "items", "required", "result", "question", "enum", "dict"]) | st.text(max_size=5),
                      children, max_size=5),  # fmt: skip
    max_leaves=25,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_ever_raises_the_documented_error(data):
    try:
        parse_tools(data)
    except ToolImportError as exc:
        assert "\n" not in str(exc)
    text = json.dumps(data)
    try:
        parse_tools_text(text + "\n" + text)
    except ToolImportError:
        pass


def test_list_show_and_stats_of_imported_tools(workspace, runner, tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([
        {"type": "function", "function": {"name": "weather", "description": "Weather now.", "parameters": SCHEMA}},
        {"type": "function", "function": {"name": "plan_trip", "description": "Plan.", "parameters": {
            "type": "object", "properties": {
                "stops": {"type": "array", "items": {"type": "object", "properties": {"city": {"type": "string"}}}},
                "mode": {"type": "string", "enum": ["car", "train"]},
            }, "required": ["stops"]}}},
    ]))  # fmt: skip
    assert runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace), "--domain", "travel"]).exit_code == 0
    listing = runner.invoke(app, ["tools", "list", "-w", str(workspace)])
    assert "plan_trip" in listing.output and "travel" in listing.output and "2 tools" in listing.output
    shown = runner.invoke(app, ["tools", "show", "weather", "-w", str(workspace)])
    assert json.loads(shown.output.split("\n", 1)[1])["parameters"] == SCHEMA
    stats = runner.invoke(app, ["tools", "stats", "-w", str(workspace), "--json"])
    data = json.loads(stats.output)
    assert data["tools"] == 2 and data["domains"] == {"travel": 2}
    # Nested parameters count too: weather.city, plan_trip.stops, stops[].city, plan_trip.mode.
    assert data["parameter_types"] == {"string": 3, "array<object>": 1} and data["nesting_depth"] == {"0": 1, "1": 1}
    assert data["required"] == 2 and data["optional"] == 2 and data["enum_share"] == 0.25


def test_tools_errors_are_one_line(workspace, runner):
    missing = runner.invoke(app, ["tools", "show", "nope", "-w", str(workspace)])
    assert missing.exit_code == 1 and missing.output.strip() == f"error: no tool named 'nope' in {workspace}; see 'looptool tools list'"
    domain = runner.invoke(app, ["tools", "synth", "-w", str(workspace), "-d", "astrology"])
    assert domain.exit_code == 1 and domain.output.startswith("error: unknown domain(s) astrology; known: travel, ")
    absent = runner.invoke(app, ["tools", "import", "no-such-file.json", "-w", str(workspace)])
    assert absent.exit_code == 1 and absent.output.startswith("error: no-such-file.json: cannot read:")
