"""Tool synthesis and simulation with the embedded model on a real vLLM CPU server."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config
from looptool.schema import ToolCall, ToolSpec
from looptool.serving.client import resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.store import Store
from looptool.tools_sim.simulator import simulate_call
from looptool.tools_sim.validate import spec_problems

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runner = CliRunner()
    ws = tmp_path_factory.mktemp("tools") / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    config = load_config(ws)
    endpoint = resolve_endpoint(config, "generator", ws, log=lambda *_: None)
    yield ws, endpoint
    ServerManager(ws, config.serving).stop_all()


def test_synth_stores_valid_unique_specs_across_domains(served):
    ws, _ = served
    args = ["tools", "synth", "-w", str(ws), "--n", "10", "-d", "weather", "-d", "travel", "-d", "finance", "-d", "food"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tools synth: 10 new, 10 synthesised in the workspace" in result.output
    with Store.open(ws / "looptool.db") as store:
        records = store.tool_records()
    assert len(records) == 10 and len({r["name"] for r in records}) == 10
    assert {r["domain"] for r in records} == {"weather", "travel", "finance", "food"}
    for r in records:
        assert spec_problems(r["spec"]) == [], r["spec"]
    stats = CliRunner().invoke(app, ["tools", "stats", "-w", str(ws)])
    assert stats.exit_code == 0 and "tools: 10 in 4 domains" in stats.output
    rerun = CliRunner().invoke(app, args)  # resumes: nothing new to do
    assert rerun.exit_code == 0 and "tools synth: 0 new, 10 synthesised" in rerun.output


WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
    returns={
        "type": "object",
        "properties": {"temperature": {"type": "number"}, "conditions": {"type": "string", "maxLength": 40}},
        "required": ["temperature", "conditions"],
        "additionalProperties": False,
    },
)


def test_simulator_answers_valid_calls_within_the_output_schema(served):
    import jsonschema

    _, endpoint = served
    result, _ = asyncio.run(simulate_call(endpoint, WEATHER, ToolCall(name="get_weather", arguments={"city": "Oslo", "unit": "celsius"})))
    assert result.ok, result.error
    jsonschema.validate(result.content, WEATHER.returns)


def test_simulator_refuses_invalid_calls_without_asking_the_model(served):
    _, endpoint = served
    result, completion = asyncio.run(simulate_call(endpoint, WEATHER, ToolCall(name="get_weather", arguments={"unit": "kelvin"})))
    assert completion is None and not result.ok and result.error["type"] == "invalid_arguments"
    assert sorted(d["kind"] for d in result.error["details"]) == ["enum", "missing_required"]
    assert '"error"' in result.to_message_content()
