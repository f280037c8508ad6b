"""Templated samples: exact labels by construction, a split by tool, determinism, and the
`seed --templated` command (adds nothing twice, never overwrites a stored label)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.calls import format_calls, label_matches, parse_calls
from looptool.cli import app
from looptool.config import load_config, save_config
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.seed.templated import (
    SCENARIOS,
    _data,
    curated_tasks_by_split,
    generated_tasks,
    heldout_tools,
    renamed,
    tasks,
    templated_samples,
    variant,
)
from looptool.store import Store
from looptool.tools_sim.validate import argument_errors, spec_problems


def test_data_is_consistent():
    pools = _data()["pools"]
    for task in tasks():
        assert not spec_problems(task.tool, strict=False), task.tool.name
        props = task.tool.parameters["properties"]
        assert all("pool" not in p for p in props.values()), "pool keys must not reach the model"
        assert task.complete(), f"{task.tool.name}: no request states every required parameter"
        for request in task.requests:
            for slot in request.slots:
                assert slot in props, f"{task.tool.name}: slot {slot} is not a parameter"
                pool = task.pools[slot]
                assert pool.startswith("int:") or pool in ("date", "time") or pool in pools, pool
    assert any(len(t.complete()) < len(t.requests) for t in tasks()), "no missing-argument request"


def test_call_labels_are_valid_and_stated_in_the_request():
    samples = templated_samples(400, seed=3)
    calls = [s for s in samples if s.label.calls]
    assert len(calls) > 100
    for s in calls:
        request = s.messages[-1].content
        specs = {t.name: t for t in s.tools}
        for call in s.label.calls:
            assert call.name in specs, "a label calls a tool the sample does not offer"
            assert not argument_errors(specs[call.name], call), (call, request)
            for value in call.arguments.values():
                if not isinstance(value, bool):
                    assert str(value) in request, (value, request)


def test_scenarios_have_the_label_they_need():
    samples = templated_samples(400, seed=1)
    by = Counter(s.scenario for s in samples)
    assert set(by) == {f"templated_{k}" for k in SCENARIOS}
    for s in samples:
        assert s.messages[0].role == "system" and s.messages[-1].role == "user"
        if s.scenario == "templated_parallel":
            assert len(s.label.calls) == 2 and s.label.calls[0].name != s.label.calls[1].name
        elif s.scenario == "templated_single":
            assert len(s.label.calls) == 1
        else:
            assert s.label.is_no_call and s.label.text
        if s.scenario == "templated_missing_argument":
            assert "need one more detail" in s.label.text


def test_labels_round_trip_through_the_matcher():
    for s in templated_samples(200, seed=0):
        answer = format_calls(s.label.calls, "tool_call_tags") if s.label.calls else s.label.text
        assert label_matches(parse_calls(answer), s.label), answer
        if s.label.calls:  # and a changed value fails
            first = s.label.calls[0]
            key = sorted(first.arguments)[0]
            changed = first.model_copy(update={"arguments": {**first.arguments, key: f"{first.arguments[key]}x"}})
            wrong = format_calls([changed, *s.label.calls[1:]], "tool_call_tags")
            assert not label_matches(parse_calls(wrong), s.label), wrong


def test_split_is_by_tool_and_deterministic():
    samples = templated_samples(300, seed=0, heldout_fraction=0.3)
    train = {t.name for s in samples if s.split == "train" for t in s.tools}
    held = {t.name for s in samples if s.split == "heldout" for t in s.tools}
    assert train and held and not train & held
    assert held <= heldout_tools(0, 0.3)
    assert 0.2 < sum(s.split == "heldout" for s in samples) / len(samples) < 0.4
    again = templated_samples(300, seed=0, heldout_fraction=0.3)
    assert [s.id for s in samples] == [s.id for s in again]
    assert [s.id for s in templated_samples(20, seed=0, heldout_fraction=0.3, start=280)] == [s.id for s in samples[280:]]
    assert [s.id for s in templated_samples(50, seed=1)] != [s.id for s in samples[:50]]
    assert all(s.split == "train" for s in templated_samples(50, seed=0, heldout_fraction=0.0))
    assert len({s.id for s in samples}) > 250


def test_bad_mix_is_refused():
    with pytest.raises(ValueError, match="templated mix"):
        templated_samples(5, mix={"single": 1.0, "chatty": 1.0})
    with pytest.raises(ValueError, match="templated mix"):
        templated_samples(5, mix={"single": 0.0})


def test_seed_templated_command_adds_nothing_twice_and_keeps_corrections(workspace: Path, runner: CliRunner):
    config = load_config(workspace)
    save_config(workspace, config.model_copy(update={"seed": config.seed.model_copy(update={"heldout_fraction": 0.3})}))
    result = runner.invoke(app, ["seed", "-w", str(workspace), "--templated", "--n", "40"])
    assert result.exit_code == 0, result.output
    first = re.search(r"(\d+) added, (\d+) already stored; samples: 40 \(train (\d+), heldout (\d+)\)", result.output)
    assert first and first.group(1) == "40" and int(first.group(4)) > 0, result.output

    with Store.open(workspace / "looptool.db") as store:
        sample = next(store.iter_samples(split="train"))
        store.set_sample_label(sample.id, Label(text="corrected"))
    result = runner.invoke(app, ["seed", "-w", str(workspace), "--templated", "--n", "50"])
    assert result.exit_code == 0, result.output
    assert "10 added, 40 already stored; samples: 50" in result.output
    with Store.open(workspace / "looptool.db") as store:
        assert store.get_sample(sample.id).label.text == "corrected"
        stored = [json.loads(s.model_dump_json()) for s in store.iter_samples()]
    assert len(stored) == 50
    assert all(s["exact"] for s in stored)  # the flag survives the store: no judge is asked about them


def test_training_names_vary_and_heldout_names_do_not():
    curated = {t.tool.name for t in tasks()}
    samples = templated_samples(300, seed=2, heldout_fraction=0.3, vary_names=0.5)
    train_names = {t.name for s in samples if s.split == "train" for t in s.tools}
    assert train_names - curated, "no training tool was renamed"
    assert {t.name for s in samples if s.split == "heldout" for t in s.tools} <= curated
    assert all(t.name in curated for s in templated_samples(100, seed=2, vary_names=0.0) for t in s.tools)
    assert all(s.exact for s in samples)  # a renamed sample's label is renamed with it: still exact


def test_generated_tools_are_consistent_and_never_stand_in_for_a_curated_tool():
    pools = _data()["pools"]
    curated = {t.tool.name for t in tasks()} | {t.tool.description for t in tasks()}
    generated = generated_tasks()
    assert len(generated) == 40
    assert len({t.tool.name for t in generated}) == len({t.tool.description for t in generated}) == 40
    for task in generated:
        assert task.tool.name not in curated and task.tool.description not in curated
        assert not spec_problems(task.tool, strict=False), task.tool.name
        props = task.tool.parameters["properties"]
        assert 1 <= len(props) <= 3 and set(task.pools) == set(props)
        assert len({task.pools[p] for p in props}) == len(props), "two parameters of one kind would be ambiguous"
        assert task.complete() and len(task.complete()) < len(task.requests), task.tool.name  # some ask, some miss
        for request in task.requests:
            assert set(request.slots) <= set(props) and len(set(request.slots)) == len(request.slots)
            for slot in request.slots:
                pool = task.pools[slot]
                assert pool.startswith("int:") or pool in ("date", "time") or pool in pools, pool


def test_generated_share_moves_training_samples_onto_generated_tools_and_leaves_heldout_alone():
    before = templated_samples(300, seed=4, heldout_fraction=0.3)
    assert [s.id for s in templated_samples(300, seed=4, heldout_fraction=0.3, generated_share=0.0)] == \
        [s.id for s in before]  # share 0: a seed's data is what it was
    generated = {t.tool.description for t in generated_tasks()}
    for share, low, high in ((0.5, 0.35, 0.65), (1.0, 1.0, 1.0)):
        samples = templated_samples(300, seed=4, heldout_fraction=0.3, generated_share=share)
        assert [s.id for s in samples if s.split == "heldout"] == [s.id for s in before if s.split == "heldout"]
        train = [s for s in samples if s.split == "train"]
        on_generated = [s for s in train if {t.description for t in s.tools} <= generated]
        mixed = [s for s in train if {t.description for t in s.tools} & generated and s not in on_generated]
        assert not mixed  # a sample offers generated tools or curated ones, not both
        assert low <= len(on_generated) / len(train) <= high, (share, len(on_generated), len(train))
        for s in on_generated:
            for call in s.label.calls:  # every value is stated in the request
                assert all(str(v) in s.messages[-1].content for v in call.arguments.values())
    scenarios = Counter(s.scenario for s in samples if s.split == "train")
    assert set(scenarios) == {f"templated_{k}" for k in SCENARIOS}


def test_the_templated_expander_varies_samples_on_generated_tools():
    samples = [s for s in templated_samples(120, seed=5, heldout_fraction=0.3, generated_share=1.0)
               if s.split == "train"]
    pool = curated_tasks_by_split(samples)["train"]
    assert {t.tool.name for t in pool} <= {t.tool.name for t in generated_tasks()}
    for s in samples[:40]:
        v = variant(s, seed=f"test:{s.id}", pool=pool)
        assert (v.parent_id, v.scenario, v.exact, len(v.label.calls)) == (s.id, s.scenario, True, len(s.label.calls))
        assert v.id != s.id


def test_renaming_never_gives_two_parameters_one_name():
    # "limit" may become "count", a name the other parameter already has.
    tool = ToolSpec(name="search_songs", description="Search songs.", parameters={
        "type": "object", "properties": {"limit": {"type": "integer"}, "count": {"type": "integer"}},
        "required": ["limit", "count"]})
    sample = Sample(messages=[system_message([tool]), Message(role="user", content="Ten songs, twice.")], tools=[tool],
                    label=Label(calls=[ToolCall(name="search_songs", arguments={"limit": 10, "count": 2})]))
    for i in range(200):
        out = renamed(sample, random.Random(i))
        props = out.tools[0].parameters["properties"]
        assert len(props) == 2 and sorted(out.tools[0].parameters["required"]) == sorted(props)
        assert sorted(out.label.calls[0].arguments.values()) == [2, 10]


def test_a_generated_missing_argument_request_is_a_full_request_less_one_value():
    pairs = 0
    for task in generated_tasks():
        for request in task.requests:
            if not task.missing(request):
                continue
            left_out = task.missing(request)[0]
            fuller = [r for r in task.requests if not task.missing(r) and left_out in r.slots
                      and [s for s in r.slots if s != left_out] == request.slots
                      and re.findall(r"\w+", r.text)[:2] == re.findall(r"\w+", request.text)[:2]]  # one opener
            assert fuller, f"{task.tool.name}: {request.text!r} is no full request less {left_out}"
            pairs += 1
    assert pairs >= 40
