"""Templated tasks on the workspace's own tools (`seed --templated --from-tools`): labels that
validate against the tools' schemas, every scenario, a split by tool, determinism; the templated
expander on them; and "a name is one tool" between the built-in templated tools and the
workspace's, both ways."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE, SeedConfig, load_config, save_config
from looptool.loop.expand import OWN_TOOLS_SOURCE, ExpandContext, expand_round, needs_model
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Sample, ToolSpec, Verdict
from looptool.seed.scenarios import draft_plan, stored_splits
from looptool.seed.templated import (
    SCENARIOS,
    curated_tasks_by_split,
    heldout_tools,
    split_by_tool,
    tasks,
    variant,
    why_not_templated,
)
from looptool.seed.tool_tasks import NotTemplatable, own_tool_samples, tool_task, tool_tasks
from looptool.store import Store
from looptool.tools_sim.importers import load_tools_file
from looptool.tools_sim.validate import argument_errors

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "smart_home_tools.json"
SPECS = load_tools_file(FIXTURE).specs
BY_NAME = {s.name: s for s in SPECS}


def _own(n: int = 400, seed: int = 0, fraction: float = 0.25, **kw: Any):
    return own_tool_samples(n, SPECS, seed=seed, heldout_fraction=fraction, **kw)


def _leaves(value: Any) -> list[Any]:
    """The scalar values inside an argument (nested objects and arrays flattened)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_the_example_tools_file_is_the_test_fixture():
    assert (ROOT / "docs" / "examples" / "smart_home_tools.json").read_text() == FIXTURE.read_text()
    assert len(SPECS) == 8


def test_labels_validate_against_the_schemas_and_every_value_is_stated():
    own = _own()
    assert not own.skipped and len(own.tasks) == 8
    calls = 0
    for s in own.samples:
        request = s.messages[-1].content
        offered = {t.name: t for t in s.tools}
        assert all(offered[t.name] == BY_NAME[t.name] for t in s.tools), "a tool is offered as the workspace has it"
        assert s.exact and s.origin == "seed" and [m.role for m in s.messages] == ["system", "user"]
        for call in s.label.calls:
            calls += 1
            assert not argument_errors(BY_NAME[call.name], call), (call, request)
            for leaf in _leaves(call.arguments):
                said = ("true" if leaf else "false") if isinstance(leaf, bool) else str(leaf)
                assert said in request, (leaf, request)
    assert calls > 150


def test_the_schemas_features_all_reach_the_labels():
    calls = [c for s in _own().samples for c in s.label.calls]
    args = [c.arguments for c in calls]

    def values(tool: str, param: str) -> list[Any]:
        return [c.arguments[param] for c in calls if c.name == tool and param in c.arguments]

    rooms = BY_NAME["set_thermostat"].parameters["properties"]["room"]["enum"]
    assert set(values("set_thermostat", "room")) == set(rooms)
    assert all(10 <= t <= 30 for t in values("set_thermostat", "temperature"))
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in values("get_energy_usage", "start_date"))
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in values("schedule_vacuum", "start_time"))
    assert all("@" in e for e in values("set_security_mode", "notify_email"))
    assert all(re.fullmatch(r"[0-9]{4}", p) for p in values("lock_door", "pin")) and values("lock_door", "pin")
    colors = values("set_light", "color")  # a nested object: its required field always, the optional one at times
    assert colors and all("hue" in c for c in colors) and any("saturation" in c for c in colors)
    actions = values("create_automation", "actions")  # an array of objects
    assert actions and all(a and all(set(item) == {"device_id", "command"} for item in a) for a in actions)
    assert any(len(r) > 1 for r in values("schedule_vacuum", "rooms"))  # an array of enum values
    # Optional parameters: stated in some requests, left out of others.
    thermostat = [a for a in args if "room" in a and "temperature" in a]
    assert any("mode" in a for a in thermostat) and any("mode" not in a for a in thermostat)


def test_every_scenario_and_its_label():
    own = _own()
    by = Counter(s.scenario for s in own.samples)
    assert set(by) == {f"templated_{k}" for k in SCENARIOS}, by
    for s in own.samples:
        if s.scenario == "templated_parallel":
            assert len(s.label.calls) == 2 and s.label.calls[0].name != s.label.calls[1].name
        elif s.scenario == "templated_single":
            assert len(s.label.calls) == 1
        elif s.scenario == "templated_missing_argument":
            # No call: the assistant asks for the required value the request leaves out, by its name.
            assert s.label.is_no_call and "need one more detail" in s.label.text
            asked = re.search(r"what is the (.+?)(?: \(|\?)", s.label.text).group(1)
            param = next(p for t in s.tools for p in t.parameters.get("required", []) if p.replace("_", " ") == asked)
            assert param, s.label.text
        else:
            assert s.label.is_no_call and "None of the available functions" in s.label.text


def test_split_by_tool_and_deterministic_for_a_seed():
    own = _own()
    train = {t.name for s in own.samples if s.split == "train" for t in s.tools}
    held = {t.name for s in own.samples if s.split == "heldout" for t in s.tools}
    assert held == own.heldout and len(held) == 2 and train == set(BY_NAME) - held  # no tool in both splits
    assert 0.1 < sum(s.split == "heldout" for s in own.samples) / len(own.samples) < 0.4
    assert [s.id for s in _own().samples] == [s.id for s in own.samples]
    other = _own(seed=1)
    assert [s.id for s in other.samples] != [s.id for s in own.samples]
    assert {t.name for s in other.samples if s.split == "heldout" for t in s.tools} == other.heldout
    assert all(s.split == "train" for s in _own(50, fraction=0.0).samples)


def test_a_tool_the_stored_samples_use_keeps_its_split():
    names = sorted(BY_NAME)
    free = split_by_tool(names, 0, 0.25)
    trained, held = sorted(free)[0], sorted(set(names) - free)[0]
    fixed = split_by_tool(names, 0, 0.25, {trained: "train", held: "heldout"})
    assert trained not in fixed and held in fixed and len(fixed) == 2
    own = _own(200, splits={trained: {"train", "heldout"}, held: {"heldout"}})
    assert trained not in own.heldout and held in own.heldout
    assert heldout_tools(0, 0.3) == split_by_tool([t.tool.name for t in tasks()], 0, 0.3)  # the curated split as before


def test_the_dialogue_seed_keeps_the_split_of_stored_samples():
    records = [{"id": f"t_{s.name}", "name": s.name, "domain": "home", "source": "test", "tree_path": "", "spec": s}
               for s in SPECS]
    held = {"lock_door", "set_light"}
    records = stored_splits(records, {n: {"heldout"} if n in held else {"train"} for n in BY_NAME})
    config = SeedConfig(heldout_fraction=0.3)
    for i in range(40):
        plan, _ = draft_plan(i, 0, config, records)
        assert (set(plan.tools) <= held) if plan.split == "heldout" else not set(plan.tools) & held


def test_a_tool_that_cannot_be_templated_is_left_out_with_the_reason():
    free_form = ToolSpec(name="run_script", description="Run a script.", parameters={
        "type": "object", "properties": {"env": {"type": "object"}}, "required": ["env"]})
    odd_optional = ToolSpec(name="tag_photo", description="Tag a photo.", parameters={
        "type": "object", "properties": {"photo_id": {"type": "string"},
                                         "extra": {"type": "string", "pattern": "^x{3}[#]+$"}},
        "required": ["photo_id"]})
    with pytest.raises(NotTemplatable, match="run_script: required parameter env: an object without properties"):
        tool_task(free_form)
    found, skipped = tool_tasks([free_form, odd_optional, BY_NAME["lock_door"]])
    assert [t.tool.name for t in found] == ["tag_photo", "lock_door"] and set(skipped) == {"run_script"}
    assert all("extra" not in r.slots for r in found[0].requests)  # an optional value it cannot state: never asked


def test_the_templated_expander_varies_samples_on_the_users_tools():
    own = _own(200)
    pools = curated_tasks_by_split(own.samples)
    assert {t.tool.name for t in pools["heldout"]} == own.heldout
    for i, s in enumerate(own.samples[:80]):
        assert why_not_templated(s) is None, s.messages[-1].content
        v = variant(s, seed=f"t{i}", pool=[*pools[s.split], *tasks()])  # curated tasks are never mixed in
        assert (v.parent_id, v.split, v.scenario, v.exact) == (s.id, s.split, s.scenario, True)
        assert {t.name for t in v.tools} <= {t.tool.name for t in pools[s.split]}
        assert all(BY_NAME[t.name] == t for t in v.tools)  # the user's tools as they are: never renamed, no curated one
        for call in v.label.calls:
            assert not argument_errors(BY_NAME[call.name], call)
    # A request the tools' schemas did not make is not traced to them.
    s = next(s for s in own.samples if s.scenario == "templated_single")
    odd = s.model_copy(update={"messages": [s.messages[0], Message(role="user", content="Do it.")], "id": ""})
    assert "not made from their schemas" in why_not_templated(Sample.model_validate(odd.model_dump()))


def test_the_expand_node_varies_own_tool_seeds_without_a_model(workspace):
    own = _own(120)
    seeds = [next(s for s in own.samples if s.scenario == f"templated_{k}" and s.split == "train") for k in SCENARIOS]
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples(own.samples)
        for s in seeds:
            store.upsert_verdict(Verdict(sample_id=s.id, round=1, verdict="PRED_WRONG", rationale="rule"))
        config = load_config(workspace)
        assert config.loop.expander == "auto" and not needs_model(store, config, 1)
        counts = asyncio.run(expand_round(ExpandContext(config, store, None, None, "2026-11-23"), 1))
        assert counts == {"kept": len(seeds) * config.loop.expansions_per_error}
        made = list(store.iter_samples(origin="expanded"))
        calls = store.agent_calls(round=1)
    assert made and all(BY_NAME[t.name] == t for s in made for t in s.tools)
    assert all(s.split == "train" and s.exact for s in made)
    assert {c["prompt_ref"] for c in calls} == {OWN_TOOLS_SOURCE}
    assert all("built from the tools' own schemas" in c["prompt"] for c in calls)


# -- the command and the clash refusal -----------------------------------------------------------


def _import(runner: CliRunner, ws: Path, file: Path = FIXTURE, *extra: str):
    return runner.invoke(app, ["tools", "import", str(file), "-w", str(ws), *extra])


def _samples(ws: Path) -> list[tuple[str, str, set[str]]]:
    """(id, split, tool names) of the stored samples, read without building them (quick)."""
    with sqlite3.connect(ws / "looptool.db") as db:
        rows = db.execute("SELECT id, split, tools_json FROM samples ORDER BY id").fetchall()
    return [(i, split, {t["name"] for t in json.loads(tools)}) for i, split, tools in rows]


def _fraction(ws: Path, value: float) -> None:
    config = load_config(ws)
    save_config(ws, config.model_copy(update={"seed": config.seed.model_copy(update={"heldout_fraction": value})}))


@pytest.mark.slow
def test_seed_from_tools_command(workspace: Path, runner: CliRunner, tmp_path: Path):
    assert "--from-tools" in runner.invoke(app, ["seed", "--help"], env={"COLUMNS": "200"}).output
    result = runner.invoke(app, ["seed", "-w", str(workspace), "--templated", "--from-tools", "--n", "10"])
    assert result.exit_code == 1 and "no tools to build tasks from" in result.output
    result = runner.invoke(app, ["seed", "-w", str(workspace), "--from-tools"])
    assert result.exit_code == 1 and "--from-tools goes with --templated" in result.output
    assert _import(runner, workspace).exit_code == 0
    _fraction(workspace, 0.25)
    own = ["seed", "-w", str(workspace), "--templated", "--from-tools"]
    result = runner.invoke(app, [*own, "--n", "120", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"seed --templated --from-tools: \d+ added, 0 already stored", result.output), result.output
    held = re.search(r"held out: (.+)", result.output).group(1).split(", ")
    assert len(held) == 2 and set(held) <= set(BY_NAME), result.output
    stored = _samples(workspace)
    assert set().union(*(tools for _, split, tools in stored if split == "heldout")) == set(held)
    again = runner.invoke(app, [*own, "--n", "120", "--seed", "3"])
    assert " 0 added" in again.output and len(_samples(workspace)) == len(stored)
    # Another seed adds samples, and the held-out tools stay held out: the stored samples fix their split.
    other = runner.invoke(app, [*own, "--n", "60", "--seed", "9"])
    assert other.exit_code == 0 and f"held out: {', '.join(held)}" in other.output, other.output
    # The same seed in a fresh workspace makes the same samples.
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["init", str(fresh)]).exit_code == 0 and _import(runner, fresh).exit_code == 0
    _fraction(fresh, 0.25)
    runner.invoke(app, ["seed", "-w", str(fresh), "--templated", "--from-tools", "--n", "120", "--seed", "3"])
    assert _samples(fresh) == stored
    # The user's own tools again, the same: no clash.
    assert _import(runner, workspace).exit_code == 0


def test_the_built_in_templated_tools_are_refused_where_a_workspace_tool_has_their_name(workspace, runner):
    assert _import(runner, workspace).exit_code == 0
    result = runner.invoke(app, ["seed", "-w", str(workspace), "--templated", "--n", "20"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and re.search(r"tool '(lock_door|set_thermostat)'", line), line
    assert "templated_tasks.json" in line and "import:openai" in line and "--from-tools" in line, line
    assert _samples(workspace) == []  # nothing added


def test_an_import_is_refused_where_templated_samples_have_the_name(workspace, runner, tmp_path):
    assert runner.invoke(app, ["seed", "-w", str(workspace), "--templated", "--n", "300"]).exit_code == 0
    result = _import(runner, workspace)
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and re.search(r"tool '(lock_door|set_thermostat)' \(import:openai\)", line), line
    assert "stored templated samples" in line, line
    with Store.open(workspace / "looptool.db") as store:
        assert store.tool_records() == []  # nothing of the file is stored
    skipped = _import(runner, workspace, FIXTURE, "--on-duplicate", "skip")
    assert skipped.exit_code == 0 and "6 new" in skipped.output and "skipped 2" in skipped.output, skipped.output
    # Identical parameters are no clash: a tool with the built-in lock_door's schema (its own description).
    built_in = next(t.tool for t in tasks() if t.tool.name == "lock_door")
    same = tmp_path / "same.json"
    same.write_text(json.dumps([{"type": "function", "function": {
        "name": "lock_door", "description": "My door lock.", "parameters": built_in.parameters}}]))
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["init", str(fresh)]).exit_code == 0
    assert runner.invoke(app, ["seed", "-w", str(fresh), "--templated", "--n", "300"]).exit_code == 0
    assert _import(runner, fresh, same).exit_code == 0
    assert runner.invoke(app, ["seed", "-w", str(fresh), "--templated", "--n", "310"]).exit_code == 0


def test_the_store_checks_an_import_batch_against_the_samples_once(workspace):
    with Store.open(workspace / "looptool.db") as store:
        tool = BY_NAME["get_device_status"]
        store.upsert_samples([Sample(messages=[system_message([tool]), Message(role="user", content="status?")],
                                     tools=[tool], label=Label(text="Which device?"))])
        changed = tool.model_copy(update={"parameters": {"type": "object", "properties": {}}})
        assert store.sample_tool_clashes([tool, changed], source="x")[0] is None
        assert "1 stored samples offer" in store.sample_tool_clashes([tool, changed], source="x")[1]
        with pytest.raises(Exception, match="other parameters"):
            store.upsert_tool(changed, source="synth")
        assert store.upsert_tools([changed, BY_NAME["lock_door"]], on_duplicate="skip")[0] is None
