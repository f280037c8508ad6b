"""The constraint tree: seeded, covers every structure the issue asks for, builds valid schemas."""

import random

import pytest

from looptool.tools_sim.constraints import MAX_PARAMS, Fill, object_schema, sample_structure
from looptool.tools_sim.semantic import curated_domains, curated_intents
from looptool.tools_sim.stats import tool_stats
from looptool.tools_sim.synth import build_spec, fill_schema, plan_intents, unique_sibling_names
from looptool.tools_sim.validate import spec_problems


def letters(i: int) -> str:
    return chr(97 + i % 26) + chr(97 + i // 26)


def fake_answer(structure, name="do_thing", same_param_names=False):
    """What a generator could answer for a structure (names chosen by us)."""
    answer = {"function_name": name, "description": "Does the thing well."}
    for i, (path, slot) in enumerate(structure.slots()):
        entry = {"name": "value" if same_param_names else f"field_{letters(i)}", "description": "A field of the thing."}
        if slot.kind == "string_enum":
            entry["values"] = [f"option_{letters(k)}" for k in range(slot.enum_size)]
        answer[path] = entry
    return answer


def test_same_seed_same_structures():
    a = [sample_structure(random.Random(f"7:{i}")) for i in range(50)]
    b = [sample_structure(random.Random(f"7:{i}")) for i in range(50)]
    c = [sample_structure(random.Random(f"8:{i}")) for i in range(50)]
    assert a == b and a != c


@pytest.mark.slow
def test_structures_cover_every_type_enums_nesting_and_optional():
    specs = []
    for i in range(300):
        structure = sample_structure(random.Random(f"0:{i}"))
        assert 0 <= len(structure.params) <= MAX_PARAMS
        specs.append(("d", build_spec(fake_answer(structure), structure)))
    stats = tool_stats(specs).as_dict()
    for json_type in ("string", "integer", "number", "boolean", "array", "object", "array<object>"):
        assert stats["parameter_types"].get(json_type, 0) > 0, json_type
    assert stats["optional"] > 0 and stats["required"] > 0
    assert stats["enum_share"] > 0.05 and stats["format_share"] > 0.05 and stats["default_share"] > 0
    assert max(stats["nesting_depth"]) == 1
    assert set(stats["params_per_tool"]) == set(range(MAX_PARAMS + 1))


@pytest.mark.slow
def test_every_built_spec_passes_strict_validation_and_fill_schema_matches():
    import jsonschema

    for i in range(100):
        structure = sample_structure(random.Random(f"1:{i}"))
        answer = fake_answer(structure)
        jsonschema.validate(answer, fill_schema(structure))
        spec = build_spec(answer, structure)
        assert spec_problems(spec) == []
        assert spec.returns["type"] == "object" and spec.returns["properties"]


def test_repeated_sibling_names_are_made_distinct():
    structure = next(s for i in range(200) if len((s := sample_structure(random.Random(f"2:{i}"))).params) >= 3)
    spec = build_spec(fake_answer(structure, same_param_names=True), structure)
    names = list(spec.parameters["properties"])
    assert len(names) == len(set(names)) == len(structure.params)
    assert names[0] == "value" and names[1].startswith("value_")


def test_object_schema_rejects_duplicates_it_is_given():
    structure = sample_structure(random.Random("3:1"))
    fills = {p: Fill("same", "d") for p, _ in structure.slots()}
    if len(structure.params) > 1:
        try:
            object_schema(structure.params, fills, "p")
        except ValueError as exc:
            assert "duplicate parameter name 'same'" in str(exc)
        else:
            raise AssertionError("duplicates accepted")
    fixed = unique_sibling_names(fills, structure)
    assert len({fixed[f"p{i}"].name for i in range(1, len(structure.params) + 1)}) == len(structure.params)


def test_semantic_tree_has_twenty_plus_domains_and_plans_span_them():
    assert len(curated_domains()) >= 20
    intents = curated_intents()
    plan = plan_intents(intents, seed=0)
    assert sorted(plan, key=lambda i: i.path) == sorted(intents, key=lambda i: i.path)
    assert len({i.domain for i in plan[:24]}) == 24  # any prefix spans the domains
    assert plan_intents(intents, seed=0) == plan and plan_intents(intents, seed=1) != plan


def test_unknown_domain_is_named():
    import pytest

    with pytest.raises(ValueError, match="unknown domain"):
        curated_intents(["astrology"])
