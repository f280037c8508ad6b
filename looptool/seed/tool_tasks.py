"""Templated tasks on the workspace's own tools: exact requests built by code from their JSON schemas.

`seed --templated` alone teaches calls on curated tools that are not the user's; `seed --templated
--from-tools` builds the same kind of samples -- single, parallel, missing-argument, irrelevant,
exact by construction -- on the tools stored in the workspace. It is the generated tools' machinery
(templated.py: value pools by kind, generic requests that state every value) driven by a tool's
schema instead of a list of kinds:

- a parameter's value is drawn as its schema says: an enum's values, a range of numbers, a
  string format (date, time, email, ...) or a simple pattern from the pools of
  `data/generated_tools.json` ("own_tools"), a nested object field by field (its required fields
  always, optional ones at times), an array as one to three items; any other string from the pool
  of the kind its name names (a `room` is a room, a `start_date` a date), else a neutral word.
  A value that does not validate against the parameter's schema is never drawn;
- a request states every value of the call in words: the kind's phrase ("in the kitchen") where
  the name is the kind's and no other parameter shares the kind, else a phrase that names the
  parameter ("with the target temperature set to 21"); objects in parentheses, arrays as a list;
- the requests of a tool state every parameter, the required ones only, some optional ones, and
  every one but one required value (the missing-argument requests), in two wordings each.

A task is a pure function of the tool's spec, so the templated expander can rebuild it from a
sample's tools and vary the sample (`templated.variant`). A tool that cannot be templated -- a
required parameter with no value that validates (a free-form object, an unusual pattern), a
parameter name that is not an identifier -- is left out with the reason (`NotTemplatable`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema

from looptool.schema import Sample, ToolSpec, canonical_json, schema_validator
from looptool.seed.templated import (
    Task,
    _data,
    _draw,
    _fill,
    _generated_data,
    _listed,
    drawn_samples,
    generated_tasks,
    generic_requests,
    label,
    split_by_tool,
    stated_sets,
)
from looptool.tools_sim.validate import argument_errors

MAX_DEPTH = 4  # nesting of objects and arrays a value may have
MAX_RANGE = 1000  # numbers drawn from at most this many candidates
PROBES = 16  # calls drawn to check that a task's labels validate
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*", re.ASCII)  # a parameter name that can be a request's {slot}
_SIMPLE_PATTERN = re.compile(r"\^?(\[0-9\]|\\d|\[A-Z\]|\[a-z\])\{(\d{1,2})\}\$?")  # ^[0-9]{4}$, \d{6}, [A-Z]{2}, ...
_PATTERN_POOLS = {"[0-9]": "digits", "\\d": "digits", "[A-Z]": "upper", "[a-z]": "lower"}


class NotTemplatable(ValueError):
    """A tool (or one of its parameters) that tasks cannot be built from, with the reason."""


@dataclass(frozen=True)
class Shape:
    """How one parameter's value is drawn from its schema and said in a request.

    kind "value": one of `values` (an enum's, or a list pool's entries that validate), or a value
    of the generated pool `pool` (templated._draw); "boolean"; "object": `fields` as (name, shape,
    required); "array": 1..`max_items` items of `item` (at least `min_items`).
    """

    kind: str
    values: tuple[Any, ...] = ()
    pool: str = ""
    fields: tuple[tuple[str, Shape, bool], ...] = ()
    item: Shape | None = None
    min_items: int = 1
    max_items: int = 3

    def draw(self, rng: random.Random, taken: dict[Any, set]) -> Any:
        if self.kind == "boolean":
            return rng.random() < 0.5
        if self.kind == "object":
            optional = [f for f in self.fields if not f[2]]
            chosen = [f for f in self.fields if f[2] or rng.random() < 0.5]
            if not chosen:  # an object states at least one field
                chosen = [rng.choice(optional)]
            return {name: shape.draw(rng, taken) for name, shape, _ in chosen}
        if self.kind == "array":
            assert self.item is not None
            return [self.item.draw(rng, taken) for _ in range(rng.randint(self.min_items, self.max_items))]
        if self.pool:
            return _draw(rng, self.pool, taken.setdefault(self.pool, set()))
        used = taken.setdefault(self.values, set())
        value = rng.choice([v for v in self.values if v not in used] or list(self.values))
        used.add(value)
        return value

    def say(self, value: Any) -> str:
        """The value as a request states it."""
        if self.kind == "object":
            fields = {name: shape for name, shape, _ in self.fields}
            return "(" + _listed([f"{label(k)} {fields[k].say(v)}" for k, v in value.items()]) + ")"
        if self.kind == "array":
            assert self.item is not None
            return _listed([self.item.say(v) for v in value])
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def _words(name: str) -> list[str]:
    return label(name).split()


# -- values --------------------------------------------------------------------------------------


def _own() -> dict[str, Any]:
    return _generated_data()["own_tools"]


@cache
def _kinds() -> tuple[dict[str, Any], ...]:
    return (*_generated_data()["kinds"], *_own()["kinds"])


def kind_of(name: str, json_type: str) -> dict[str, Any] | None:
    """The kind whose values fit a parameter: the one its name is, else the one its last word is
    (start_date -> date), of the parameter's type (an integer kind serves a number)."""
    if name.endswith("[]"):  # an array's item: "device_ids[]" is a device id
        name = name[:-2]
        name = name[:-1] if name.endswith("s") and not name.endswith("ss") else name
    words = _words(name)
    fits = [k for k in _kinds() if k["type"] == json_type or (json_type == "number" and k["type"] == "integer")]
    for wanted in ("_".join(words), words[-1] if words else ""):
        found = next((k for k in fits if wanted in k["names"]), None)
        if found is not None:
            return found
    return None


def _validator(schema: dict[str, Any]) -> Any:
    return schema_validator(schema, format_checker=jsonschema.FormatChecker())


def _resolved(schema: Any, root: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """The schema with a local reference ('#/$defs/x', '#/definitions/x') followed."""
    if not isinstance(schema, dict):
        raise NotTemplatable("a schema that is not an object")
    ref = schema.get("$ref")
    if ref is None:
        return schema
    if depth > MAX_DEPTH or not isinstance(ref, str) or not ref.startswith("#/"):
        raise NotTemplatable(f"the reference {ref!r} cannot be followed")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise NotTemplatable(f"the reference {ref!r} points nowhere")
        node = node[part]
    return _resolved({**node, **{k: v for k, v in schema.items() if k != "$ref"}}, root, depth + 1)


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return kind


def shape_of(schema: Any, name: str, root: dict[str, Any], depth: int = 0) -> Shape:
    """The Shape of a parameter's values; NotTemplatable when no value can be drawn that validates."""
    if depth > MAX_DEPTH:
        raise NotTemplatable(f"{name}: nested deeper than {MAX_DEPTH} levels")
    schema = _resolved(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema and "type" not in schema:
            reasons = []
            for branch in schema[key]:
                try:
                    branch = _resolved(branch, root)
                    if branch.get("type") == "null":
                        continue
                    return shape_of({**{k: v for k, v in schema.items() if k != key}, **branch}, name, root, depth + 1)
                except NotTemplatable as exc:
                    reasons.append(str(exc))
            raise NotTemplatable(f"{name}: no branch of its {key} can be templated ({'; '.join(reasons)[:200]})")
    if "allOf" in schema:
        raise NotTemplatable(f"{name}: allOf is not templated")
    check = _validator({k: v for k, v in schema.items() if k not in ("$defs", "definitions")} | _defs(root))
    choices = [schema["const"]] if "const" in schema else schema.get("enum")
    if choices is not None:
        values = tuple(v for v in choices if isinstance(v, (str, int, float)) and v != "" and check.is_valid(v))
        if not values:
            raise NotTemplatable(f"{name}: no value of its enum can be stated")
        return Shape("value", values=values)
    kind = _type(schema)
    if kind == "boolean":
        return Shape("boolean")
    if kind in ("integer", "number"):
        return Shape("value", values=_numbers(schema, name, kind, check))
    if kind == "string":
        return _string(schema, name, check)
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            raise NotTemplatable(f"{name}: an object without properties (free-form) cannot be stated")
        required = schema.get("required", [])
        fields = []
        for field, sub in props.items():
            try:
                fields.append((field, shape_of(sub, f"{name}.{field}", root, depth + 1), field in required))
            except NotTemplatable:
                if field in required:
                    raise
        if any(r not in props for r in required) or not fields:
            raise NotTemplatable(f"{name}: its required fields cannot all be stated")
        return Shape("object", fields=tuple(fields))
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        item = shape_of(items if isinstance(items, dict) else {"type": "string"}, f"{name}[]", root, depth + 1)
        low = max(1, int(schema.get("minItems", 1)))
        high = min(int(schema.get("maxItems", 3)), max(low, 3))
        if low > 5 or high < low:
            raise NotTemplatable(f"{name}: {low} to {high} items cannot be stated")
        return Shape("array", item=item, min_items=low, max_items=high)
    raise NotTemplatable(f"{name}: type {kind!r} cannot be stated")


def _defs(root: dict[str, Any]) -> dict[str, Any]:
    # A sub-schema validated on its own still sees the definitions its references point at.
    return {k: root[k] for k in ("$defs", "definitions") if k in root}


def _numbers(schema: dict[str, Any], name: str, kind: str, check: Any) -> tuple[Any, ...]:
    def bound(*keys: str) -> Any:  # (draft 4 has boolean exclusive bounds: the value filter applies them)
        return next((schema[k] for k in keys if isinstance(schema.get(k), (int, float))
                     and not isinstance(schema.get(k), bool)), None)

    low, high = bound("minimum", "exclusiveMinimum"), bound("maximum", "exclusiveMaximum")
    known = kind_of(name, kind)
    if low is None and high is None and known is not None and known["pool"].startswith("int:"):
        low, high = (int(x) for x in known["pool"].split(":")[1:])
    low = high - 20 if low is None and high is not None else (1 if low is None else low)
    high = low + 20 if high is None else high
    if kind == "number" and high - low < 5:  # a narrow range of a number: steps of a twentieth
        step = (high - low) / 20
        candidates = [round(low + i * step, 2) for i in range(21)]
    else:
        start = int(-(-low // 1))  # the smallest integer >= low
        candidates = list(range(start, min(int(high // 1), start + MAX_RANGE - 1) + 1))
    values = tuple(v for v in candidates if check.is_valid(v))
    if not values:
        raise NotTemplatable(f"{name}: no number between {low} and {high} fits its schema")
    return values


def _string(schema: dict[str, Any], name: str, check: Any) -> Shape:
    pools = list(_own()["formats"].get(schema.get("format"), []))
    pattern = _SIMPLE_PATTERN.fullmatch(str(schema.get("pattern", "")))
    if pattern:
        pools.append(f"{_PATTERN_POOLS[pattern.group(1)]}:{pattern.group(2)}")
    known = kind_of(name, "string")
    if known is not None:
        pools.append(known["pool"])
    pools.append("word")
    for pool in pools:
        if pool in _data()["pools"]:
            values = tuple(v for v in _data()["pools"][pool] if check.is_valid(v))
            if len(values) >= 2:
                return Shape("value", values=values)
        else:
            rng = random.Random(f"probe:{pool}")
            if all(check.is_valid(_draw(rng, pool, set())) for _ in range(PROBES)):
                return Shape("value", pool=pool)
    raise NotTemplatable(f"{name}: no value pool fits its schema ({canonical_json(schema)[:120]})")


# -- tasks ---------------------------------------------------------------------------------------


def _action(spec: ToolSpec) -> str:
    """What the tool does, as a request opens: the first sentence of its description when it starts
    with the verb of the tool's name ("Set the target temperature of a thermostat"), else the name
    in words ("Get device status")."""
    words = _words(spec.name.rsplit(".", 1)[-1]) or [spec.name]  # "geometry.calculate_area": "calculate area"
    sentence = re.split(r"(?<=[.!?])\s", spec.description.strip(), maxsplit=1)[0].rstrip(".!?:; ").strip()
    first, *rest = sentence.split() or [""]
    verb = words[0]
    if rest and len(rest) < 14 and first.lower() in (verb, verb + "s", verb + "es", verb[:-1] + "ies"):
        text = " ".join([verb, *rest])
    else:
        text = " ".join(words)
    text = text.replace("{", "(").replace("}", ")")
    return text[0].upper() + text[1:]


def _says(spec: ToolSpec, shapes: dict[str, Shape]) -> dict[str, list[str]]:
    """The phrases each parameter is stated with: its kind's when its name is the kind's and no
    other parameter shares the kind (two dates would be confused), else phrases that name it."""
    props = spec.parameters.get("properties", {})
    kinds = {p: kind_of(p, _type(props[p]) if isinstance(props[p], dict) else "string") for p in shapes}
    out = {}
    for p in shapes:
        kind = kinds[p]
        own = kind is not None and "_".join(_words(p)) in kind["names"] and "say" in kind
        if own and sum(1 for k in kinds.values() if k is kind) == 1 and shapes[p].kind == "value":
            out[p] = list(kind["say"])
        else:
            out[p] = [phrase.replace("{label}", label(p)) for phrase in _own()["labelled"]]
    return out


_TASKS: dict[str, Task | str] = {}  # by the spec's canonical JSON (a task is a pure function of it), or why not


def _task(spec: ToolSpec, spec_json: str) -> Task:
    params = spec.parameters
    required = [p for p in params.get("required", [])]
    shapes: dict[str, Shape] = {}
    for name, schema in params.get("properties", {}).items():
        try:
            if not _IDENTIFIER.fullmatch(name):
                raise NotTemplatable(f"{name}: the parameter's name is not an identifier")
            shapes[name] = shape_of(schema, name, params)
        except NotTemplatable as exc:
            if name in required:
                raise NotTemplatable(f"required parameter {exc}") from None
    names = list(shapes)
    rng = random.Random(f"tool-task:{spec_json}")
    optional = [p for p in names if p not in required]
    sets = stated_sets(names, required)
    if len(optional) >= 2:  # some optional values, not all
        sets.insert(1, [*required, *rng.sample(optional, len(optional) // 2)])
    task = Task(spec, shapes, generic_requests(rng, _action(spec), sets, _says(spec, shapes)), from_schema=True)
    probe = random.Random(f"tool-task-probe:{spec_json}")
    for _ in range(PROBES):
        _, call = _fill(probe, task)
        errors = argument_errors(spec, call)
        if errors:
            raise NotTemplatable(f"a drawn call does not fit the schema: {errors[0].path or 'arguments'}: "
                                 f"{errors[0].message[:160]}")
    return task


def tool_task(spec: ToolSpec) -> Task:
    """The templated task of a tool (a pure function of its spec); NotTemplatable with the reason."""
    key = canonical_json(spec.model_dump())
    if key not in _TASKS:
        try:
            _TASKS[key] = _task(spec, key)
        except NotTemplatable as exc:
            _TASKS[key] = f"{spec.name}: {exc}"
    found = _TASKS[key]
    if isinstance(found, str):
        raise NotTemplatable(found)
    return found


def tool_tasks(specs: Iterable[ToolSpec]) -> tuple[list[Task], dict[str, str]]:
    """The tasks of the tools that can be templated, and why each other one cannot (name -> reason)."""
    tasks, skipped = [], {}
    for spec in specs:
        try:
            tasks.append(tool_task(spec))
        except NotTemplatable as exc:
            skipped[spec.name] = str(exc)
    return tasks, skipped


def tool_samples(n: int, tasks: Sequence[Task], heldout: set[str], *, seed: int = 0,
                 mix: dict[str, float] | None = None, start: int = 0, generated_share: float = 0.0) -> list[Sample]:
    """Samples start .. start+n-1 built on the tasks (`tool_tasks`) for `seed`: held-out samples
    offer only the `heldout` tools, training samples only the others; a share of the samples as
    large as the held-out tools' share is held out. A share `generated_share` of the training
    samples is built on the generated tools whose names no task has (so no name stands for two
    tools). Names are never varied: they are the user's."""
    by_split = {"heldout": [t for t in tasks if t.tool.name in heldout],
                "train": [t for t in tasks if t.tool.name not in heldout]}
    names = {t.tool.name for t in tasks}
    generated = [t for t in generated_tasks() if t.tool.name not in names] if generated_share > 0 else []
    share = len(by_split["heldout"]) / len(tasks) if tasks else 0.0
    return drawn_samples(f"from-tools:{seed}", range(start, start + n), by_split, heldout_share=share, mix=mix,
                         generated=generated, generated_share=generated_share, vary_names=0.0)


@dataclass(frozen=True)
class OwnToolSamples:
    """What `seed --templated --from-tools` made: the samples, the tasks they were built on, the tools
    held out, and the tools left out with the reason."""

    samples: list[Sample]
    tasks: list[Task]
    heldout: set[str]
    skipped: dict[str, str]


def own_tool_samples(n: int, specs: Sequence[ToolSpec], *, seed: int, heldout_fraction: float,
                     splits: dict[str, set[str]] | None = None, generated_share: float = 0.0,
                     mix: dict[str, float] | None = None) -> OwnToolSamples:
    """`n` samples on the tools `specs` (a workspace's), split by tool: a seeded share
    `heldout_fraction` of the tools is held out (`templated.split_by_tool`), except that a tool the
    stored samples already offer keeps their split (`splits`: name -> the splits of the samples that
    offer it; a tool already trained on is never held out)."""
    tasks, skipped = tool_tasks(specs)
    fixed = {name: "train" if "train" in found else "heldout" for name, found in (splits or {}).items() if found}
    heldout = split_by_tool([t.tool.name for t in tasks], seed, heldout_fraction, fixed)
    samples = tool_samples(n, tasks, heldout, seed=seed, mix=mix, generated_share=generated_share) if tasks else []
    return OwnToolSamples(samples, tasks, heldout, skipped)
