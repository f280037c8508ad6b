"""The templated expander: variants of a templated error sample keep its tasks, scenario, call
count and split and change values, wording, tool order, distractors and (training, at times) names;
they never offer a held-out tool in training, are traced back from renamed seeds, are a pure
function of their seed string. The expand node sends seeds to it by `[loop] expander`: templated
seeds under "auto" need no model at all, "model" still asks the model, and under "templated" a seed
that is not a templated sample is a failed attempt with its reason."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from looptool.agents.expander import DIMENSIONS
from looptool.config import DB_FILE, load_config, save_config
from looptool.loop.expand import TEMPLATED, TEMPLATED_SOURCE, ExpandContext, expand_round, needs_model
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec, Verdict
from looptool.seed import templated
from looptool.seed.templated import (
    NotTemplated,
    _request_of,
    curated_task,
    curated_tasks_by_split,
    heldout_tools,
    renamed,
    tasks,
    templated_samples,
    variant,
    why_not_templated,
)
from looptool.store import Store
from looptool.tools_sim.validate import argument_errors
from tests.fakes import chat_reply, json_schema_responder, schema_name

SAMPLES = templated_samples(160, seed=0, heldout_fraction=0.3)
POOLS = curated_tasks_by_split(SAMPLES)
HELDOUT = heldout_tools(0, 0.3)


def curated_names(tools: list[ToolSpec]) -> list[str]:
    return [curated_task(t).tool.name for t in tools]


def called_tasks(sample: Sample) -> list[str]:
    """The curated tasks the label calls, in call order."""
    by_name = {t.name: t for t in sample.tools}
    return [curated_task(by_name[c.name]).tool.name for c in sample.label.calls]


def variants_of(sample: Sample, n: int = 3) -> list[Sample]:
    return [variant(sample, seed=f"test:{sample.id}:{k}", pool=POOLS[sample.split]) for k in range(n)]


def test_variants_keep_the_trap_and_change_the_rest():
    changed_request = other_template = other_tools = 0
    made = 0
    for seed in SAMPLES:
        for v in variants_of(seed):
            made += 1
            assert (v.origin, v.parent_id, v.exact) == ("expanded", seed.id, True)
            assert (v.split, v.scenario) == (seed.split, seed.scenario)
            assert [m.role for m in v.messages] == ["system", "user"] and v.messages[0] == system_message(v.tools)
            assert len(v.label.calls) == len(seed.label.calls) and called_tasks(v) == called_tasks(seed)
            specs = {t.name: t for t in v.tools}
            for call in v.label.calls:  # valid, and every value stated in the request: exact
                assert not argument_errors(specs[call.name], call), call
                assert all(str(x) in v.messages[-1].content for x in call.arguments.values() if not isinstance(x, bool))
            if seed.scenario == "templated_missing_argument":  # the same detail is missing
                assert v.label.text == seed.label.text
            if seed.scenario == "templated_irrelevant":  # the same tools, another request
                assert sorted(curated_names(v.tools)) == sorted(curated_names(seed.tools))
                assert v.messages[-1].content != seed.messages[-1].content and v.label == seed.label
            changed_request += v.messages[-1].content != seed.messages[-1].content
            other_tools += [t.name for t in v.tools] != [t.name for t in seed.tools]
            if seed.scenario == "templated_single":
                task = curated_task(next(t for t in seed.tools if t.name == seed.label.calls[0].name))
                before, after = (_request_of(task, s.messages[-1].content) for s in (seed, v))
                other_template += before != after
    assert changed_request > 0.85 * made  # (a missing-argument template without slots reads the same)
    assert other_tools > 0.9 * made and other_template > 50


def test_training_variants_never_offer_a_heldout_tool_and_heldout_ones_keep_their_names():
    renamed_variants = 0
    for seed in SAMPLES:
        for v in variants_of(seed):
            names = set(curated_names(v.tools))
            if seed.split == "train":
                assert not names & HELDOUT, names & HELDOUT
                renamed_variants += any(t.name not in names for t in v.tools)
            else:
                assert names <= HELDOUT and {t.name for t in v.tools} == names  # never renamed
    assert renamed_variants > 50


def test_renamed_seeds_are_traced_back_to_their_tasks():
    train = [s for s in SAMPLES if s.split == "train"][:40]
    for i, seed in enumerate(train):
        seed = renamed(seed, random.Random(i))
        assert why_not_templated(seed) is None
        for v in variants_of(seed, 2):
            assert called_tasks(v) == called_tasks(seed) and v.scenario == seed.scenario
            if seed.scenario == "templated_missing_argument":
                assert v.label.text == seed.label.text


def test_variants_are_deterministic_and_their_ids_hash_the_content():
    seed = next(s for s in SAMPLES if s.scenario == "templated_parallel")
    first = variant(seed, seed="a", pool=POOLS[seed.split])
    assert variant(seed, seed="a", pool=POOLS[seed.split]) == first
    assert variant(seed, seed="a", pool=list(reversed(POOLS[seed.split]))) == first  # the pool's order is no matter
    ids = {variant(seed, seed=str(k), pool=POOLS[seed.split]).id for k in range(20)}
    assert len(ids) == 20 and seed.id not in ids
    # The same content from another parent is another sample: the id hashes the parent.
    other = first.model_copy(update={"id": "", "parent_id": "s_other"})
    assert Sample.model_validate(other.model_dump()).id != first.id


def test_what_is_not_a_templated_sample_is_refused_with_a_reason():
    seed = next(s for s in SAMPLES if s.scenario == "templated_single" and s.split == "train")
    written = seed.model_copy(update={"exact": False})
    assert "not exact" in why_not_templated(written)
    with pytest.raises(NotTemplated, match="not exact"):
        variant(written, seed="x")
    assert "scenario" in why_not_templated(seed.model_copy(update={"scenario": "single"}))
    foreign = ToolSpec(name="get_weather", description="Weather of a city.",
                       parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    tools = [*seed.tools, foreign]
    odd = seed.model_copy(update={"tools": tools, "messages": [system_message(tools), *seed.messages[1:]]})
    assert "'get_weather' is not one of the curated tools" in why_not_templated(odd)
    # A tool with a curated description but other parameters is not that task.
    changed = seed.tools[0].model_copy(update={"parameters": {"type": "object", "properties": {}}})
    assert curated_task(changed) is None


def test_curated_descriptions_must_be_unique(monkeypatch):
    first = tasks()[0]
    twin = templated.Task(first.tool.model_copy(update={"name": "twin"}), first.pools, first.requests)
    monkeypatch.setattr(templated, "tasks", lambda: (first, twin))
    templated._by_description.cache_clear()
    try:
        with pytest.raises(ValueError, match="share the description"):
            curated_task(first.tool)
    finally:
        templated._by_description.cache_clear()
    assert len({t.tool.description for t in tasks()}) == len(tasks())


# -- the expand node ---------------------------------------------------------------------------

def _seeds() -> list[Sample]:
    """Training error seeds of every scenario, one of them renamed."""
    train = [s for s in SAMPLES if s.split == "train"]
    picked = [next(s for s in train if s.scenario == f"templated_{k}")
              for k in ("single", "parallel", "missing_argument", "irrelevant")]
    base = next(s for s in train if s.scenario == "templated_single" and s not in picked)
    return [*picked, renamed(base, random.Random(7))]


WRITTEN = Sample(messages=[system_message(SAMPLES[0].tools), Message(role="user", content="Do the thing, please.")],
                 tools=SAMPLES[0].tools, label=Label(text="Which thing?"), scenario="single")  # model-written


def _workspace(workspace: Path, seeds: list[Sample], expander: str) -> Path:
    config = load_config(workspace).model_copy(deep=True)
    config.loop.expander = expander
    save_config(workspace, config)
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples([*SAMPLES, *seeds])
        for s in seeds:
            store.upsert_verdict(Verdict(sample_id=s.id, round=1, verdict="PRED_WRONG", rationale="rule"))
    return workspace


def _expand(ws: Path, endpoint=None) -> dict[str, int]:
    with Store.open(ws / DB_FILE) as store:
        return asyncio.run(expand_round(ExpandContext(load_config(ws), store, endpoint, endpoint, "2026-11-23"), 1))


@pytest.mark.slow
def test_auto_expands_templated_seeds_without_any_model(workspace):
    seeds = _seeds()
    ws = _workspace(workspace, seeds, "auto")
    k = load_config(ws).loop.expansions_per_error
    with Store.open(ws / DB_FILE) as store:
        assert not needs_model(store, load_config(ws), 1)  # the loop starts no server for this round
        # A variant stored before the round is a duplicate when the node makes it again.
        pool = curated_tasks_by_split(store.iter_samples())["train"]
        stored = variant(seeds[0], seed=f"{seeds[0].id}:1:0", pool=pool)
        store.upsert_sample(stored)
    counts = _expand(ws)  # no endpoint at all: nothing can be asked
    assert counts == {"kept": len(seeds) * k - 1, "duplicate": 1}
    with Store.open(ws / DB_FILE) as store:
        expanded = [s for s in store.iter_samples(origin="expanded") if s.id != stored.id]
        attempts = {s.id: store.expansions_of(s.id) for s in seeds}
        calls = store.agent_calls(round=1)
    by_parent = {s.id: s for s in seeds}
    assert len(expanded) == len(seeds) * k - 1
    for v in expanded:
        parent = by_parent[v.parent_id]
        assert v.round_added == 2 and v.exact and (v.scenario, v.split) == (parent.scenario, parent.split)
        assert called_tasks(v) == called_tasks(parent)
    assert attempts[seeds[0].id][0]["status"] == "duplicate"
    assert {a["dimension"] for rows in attempts.values() for a in rows} == {TEMPLATED}
    # One trace row per slot, made by code: no model, latency or tokens.
    assert Counter(c["subject"] for c in calls) == {f"expansion:{s.id}:1:{slot}": 1 for s in seeds for slot in range(k)}
    for c in calls:
        assert (c["agent"], c["call_key"], c["status"]) == ("expander", "expand.a0", "ok")
        assert c["prompt_ref"] == TEMPLATED_SOURCE
        assert c["model"] is None and c["prompt_tokens"] is None and c["latency_ms"] is None
        assert c["prompt"].startswith("No model") and c["parsed"]["user"] in c["raw"]
    assert _expand(ws) == counts  # every slot is tried once


def test_the_model_setting_still_asks_the_model(workspace, fake_openai):
    seeds = _seeds()[:2]
    ws = _workspace(workspace, seeds, "model")
    k = load_config(ws).loop.expansions_per_error
    expander = json_schema_responder()

    def respond(path: str, body: dict):
        if schema_name(body) == "expander":
            return expander(path, body)
        return 200, chat_reply(json.dumps({"analysis": "checked", "correct": True}))

    fake_openai.responder = respond
    with Store.open(ws / DB_FILE) as store:
        assert needs_model(store, load_config(ws), 1)
    counts = _expand(ws, fake_openai.endpoint)
    assert sum(counts.values()) == len(seeds) * k
    asked = [body for _, body in fake_openai.requests if schema_name(body) == "expander"]
    assert len(asked) == len(seeds) * k
    with Store.open(ws / DB_FILE) as store:
        dims = {a["dimension"] for s in seeds for a in store.expansions_of(s.id)}
    assert dims <= set(DIMENSIONS)


def test_under_templated_a_seed_that_is_not_templated_fails_with_its_reason(workspace):
    ws = _workspace(workspace, [WRITTEN], "templated")
    k = load_config(ws).loop.expansions_per_error
    with Store.open(ws / DB_FILE) as store:
        assert not needs_model(store, load_config(ws), 1)
    assert _expand(ws) == {"invalid": k}
    with Store.open(ws / DB_FILE) as store:
        attempt = store.expansions_of(WRITTEN.id)[0]
        (call,) = store.agent_calls(subject=f"expansion:{WRITTEN.id}:1:0")
    assert attempt["status"] == "invalid" and "label is not exact" in attempt["detail"]
    assert call["status"] == "error" and call["error"] == attempt["detail"] and call["raw"] is None


def test_auto_sends_a_model_written_seed_to_the_model(workspace):
    ws = _workspace(workspace, [WRITTEN, _seeds()[0]], "auto")
    with Store.open(ws / DB_FILE) as store:
        assert needs_model(store, load_config(ws), 1)
    with pytest.raises(RuntimeError, match="need the expander model"):
        _expand(ws)  # the templated seed's slots are recorded first; the model's need an endpoint
    with Store.open(ws / DB_FILE) as store:
        assert store.expansion_counts(1) == {"kept": load_config(ws).loop.expansions_per_error}


def test_an_exact_sample_with_foreign_tools_is_not_templated():
    tool = ToolSpec(name="f", description="Something else.", parameters={"type": "object", "properties": {}})
    sample = Sample(messages=[system_message([tool]), Message(role="user", content="Do f.")], tools=[tool],
                    label=Label(calls=[ToolCall(name="f", arguments={})]), scenario="templated_single", exact=True)
    assert "not one of the curated tools" in why_not_templated(sample)
