"""Templated samples: coherent tool-call tasks built by code from a curated tool set, no model.

A small generator model (the embedded one) writes dialogues whose labels are mostly noise; a
model trained on them learns the call format but not to copy the request into the arguments.
Templated samples are exact by construction -- the request states every value the label
passes -- and say so (`Sample.exact`: the loop never asks a judge about their labels). They
teach a policy that cannot call tools yet what a call is (the SFT warm start) and measure
whether it learnt that on tools it never saw (the held-out split).

Sample i is a pure function of (seed, i), so adding samples again adds nothing twice: ids hash
the content. The data (`data/templated_tasks.json`) holds the tools, the request templates and
the value pools; its description says how a template is read.

`variant` is the loop's templated expander: a new sample around a templated sample the policy got
wrong, made by code. It keeps what the policy got wrong -- the same curated tasks, scenario and
call count -- and changes the rest: the argument values, the request's wording (another template
of the task where there is one), the tool order, the distractor tools, and for a training sample
at times the tool and parameter names (`renamed`). The seed's tools are traced back to the curated
tasks by their descriptions, which `renamed` keeps; a variant is a pure function of its seed
string, and exact like its seed.

Tasks built from a workspace's own tools (`seed --templated --from-tools`, tool_tasks.py) use the
same machinery -- pools, generic requests, `_sample`, `drawn_samples` -- with values shaped by each
tool's JSON schema. A sample offers curated (and generated) tools or the workspace's own, never
both; `variant` rebuilds the tasks of the latter from the tools' schemas and never renames them.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any

from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec, canonical_json

SCENARIOS = ("single", "parallel", "missing_argument", "irrelevant")
DEFAULT_MIX = {"single": 0.4, "parallel": 0.2, "missing_argument": 0.2, "irrelevant": 0.2}
_SLOT = re.compile(r"\{(\w+)\}")
ALSO = " Also, "  # joins a parallel sample's two requests


@dataclass(frozen=True)
class Request:
    text: str  # with {param} slots
    fixed: dict[str, Any]  # arguments the wording implies (e.g. "unlock" -> locked=false)

    @property
    def slots(self) -> list[str]:
        return _SLOT.findall(self.text)


@dataclass(frozen=True)
class Task:
    tool: ToolSpec  # as the model sees it (no "pool" keys)
    pools: dict[str, Any]  # parameter -> pool name (or, for a task built from a tool's schema, its tool_tasks.Shape)
    requests: tuple[Request, ...]
    from_schema: bool = False  # built from a workspace tool's own schema (tool_tasks.py), not from the data files

    def complete(self) -> list[Request]:
        """Requests that state every required parameter."""
        return [r for r in self.requests if not self.missing(r)]

    def missing(self, request: Request) -> list[str]:
        given = set(request.slots) | set(request.fixed)
        return [p for p in self.tool.parameters.get("required", []) if p not in given]


@cache
def _data() -> dict[str, Any]:
    return json.loads(resources.files("looptool.seed").joinpath("data/templated_tasks.json").read_text("utf-8"))


@cache
def tasks() -> tuple[Task, ...]:
    """The curated tools with their request templates."""
    out = []
    for t in _data()["tools"]:
        props = {k: {f: v for f, v in p.items() if f != "pool"} for k, p in t["parameters"]["properties"].items()}
        tool = ToolSpec(name=t["name"], description=t["description"], parameters={**t["parameters"], "properties": props})
        pools = {k: p["pool"] for k, p in t["parameters"]["properties"].items() if "pool" in p}
        requests = tuple(Request(r, {}) if isinstance(r, str) else Request(r["text"], r.get("fixed", {}))
                         for r in t["requests"])  # fmt: skip
        out.append(Task(tool, pools, requests))
    return tuple(out)


def heldout_tools(seed: int, fraction: float) -> set[str]:
    """The tools kept for the held-out split: a seeded share of the curated tools (at least one
    on each side when 0 < fraction < 1)."""
    return split_by_tool([t.tool.name for t in tasks()], seed, fraction)


def split_by_tool(names: Iterable[str], seed: int, fraction: float, fixed: dict[str, str] | None = None) -> set[str]:
    """The names held out: a seeded share `fraction` of them (at least one on each side when
    0 < fraction < 1 and there are two or more). A name in `fixed` (name -> "train" or "heldout")
    keeps that split and counts towards the share: a tool the workspace's samples already train on
    is never held out, nor is a held-out one trained on."""
    names = sorted(set(names))
    fixed = {n: s for n, s in (fixed or {}).items() if n in names}
    held = {n for n, s in fixed.items() if s == "heldout"}
    free = [n for n in names if n not in fixed]
    random.Random(f"templated-split:{seed}").shuffle(free)
    k = round(len(names) * fraction)
    if 0 < fraction < 1:
        k = min(max(k, 1), len(names) - 1)
    return held | set(free[: max(0, k - len(held))])


@cache
def generated_tasks() -> tuple[Task, ...]:
    """Training-only tools made by code (`data/generated_tools.json`), one per action.

    Why: 21 curated training tools are few enough for a small policy to learn by heart -- it then
    fits their labels and still leaves out stated values, or invents missing ones, on tools it has
    not seen. A generated tool has one to three parameters of different kinds, and its requests
    state each value with a generic phrase ("Book a haircut for Alice Martin on 2027-03-02."): the
    call is read from the request and the tool list, not recalled. Some requests leave out an
    optional value, some a required one (missing-argument tasks). The set is fixed (its own seed),
    and `heldout_tools` never draws from it.
    """
    data = _generated_data()
    rng = random.Random("generated-tools:v1")
    out = []
    for action in data["actions"]:
        kinds = rng.sample(data["kinds"], rng.randint(1, 3))
        props: dict[str, Any] = {}
        pools: dict[str, str] = {}
        says: dict[str, list[str]] = {}
        for kind in kinds:
            name = rng.choice(kind["names"])
            props[name] = {"type": kind["type"], "description": kind["description"],
                           **({"enum": kind["enum"]} if "enum" in kind else {})}
            pools[name], says[name] = kind["pool"], kind["say"]
        names = list(props)
        required = [names[0]] + [p for p in names[1:] if rng.random() < 0.5]
        tool = ToolSpec(name=action["name"], description=f"{action['text']}.",
                        parameters={"type": "object", "properties": props, "required": required})
        out.append(Task(tool, pools, generic_requests(rng, action["text"], stated_sets(names, required), says)))
    return tuple(out)


@cache
def _generated_data() -> dict[str, Any]:
    return json.loads(resources.files("looptool.seed").joinpath("data/generated_tools.json").read_text("utf-8"))


def stated_sets(names: list[str], required: list[str]) -> list[list[str]]:
    """The parameters a tool's requests state: every one; the required ones only; then every one
    but one required (the missing-argument requests)."""
    out = [names]
    if len(required) < len(names):
        out.append(required)
    return out + [[p for p in names if p != left_out] for left_out in required]


def generic_requests(rng: random.Random, action: str, stated: list[list[str]],
                     says: dict[str, list[str]]) -> tuple[Request, ...]:
    """Two wordings of each stated set: an opener with the action ("Book a haircut"), then a phrase
    per stated parameter, in a drawn order, each a phrase of `says` with {} standing for the value.

    A set that is an earlier set less one parameter (a missing-argument request, or the required
    ones of a tool with one optional) is not drawn anew: it is that set's wordings with the one
    phrase left out, so the two requests differ by that value only ("Book a haircut for Alice
    Martin." against "... for Alice Martin on 2027-03-02."). A policy trained on both learns that
    the stated value is what decides between calling and asking, not the wording around it."""
    openers = _generated_data()["openers"]
    requests: dict[str, Request] = {}
    wordings: dict[frozenset[str], list[tuple[str, list[tuple[str, str]]]]] = {}  # set -> (opener, (param, phrase)...)
    for params in stated:
        fuller = next((drawn for key, drawn in wordings.items()
                       if set(params) < key and len(key) == len(params) + 1), None)
        if fuller is not None:
            drawn = [(opener, [(p, phrase) for p, phrase in said if p in params]) for opener, said in fuller]
        else:
            drawn = []
            for _ in range(2):
                order = rng.sample(params, len(params))
                drawn.append((rng.choice(openers), [(p, rng.choice(says[p]).replace("{}", "{" + p + "}")) for p in order]))
        wordings.setdefault(frozenset(params), drawn)
        for opener, said in drawn:
            verb = action if opener == "{}" else action[0].lower() + action[1:]
            phrases = [phrase for _, phrase in said]
            text = " ".join([opener.format(verb), *([_listed(phrases)] if phrases else [])])
            text += "?" if opener.startswith("Can") else "."
            requests.setdefault(text, Request(text, {}))
    return tuple(requests.values())


def _listed(phrases: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def templated_samples(n: int, *, seed: int = 0, heldout_fraction: float = 0.3,
                      mix: dict[str, float] | None = None, start: int = 0, vary_names: float = 0.5,
                      generated_share: float = 0.0) -> list[Sample]:
    """Samples start .. start+n-1 of the templated set for `seed`.

    Held-out samples offer only held-out tools and training samples only the others, so the
    held-out split measures tools the policy never trained on, as the seed split does. A share
    `vary_names` of the training samples gets its tool and parameter names varied (`renamed`),
    and a share `generated_share` of them is built on the generated tools (`generated_tasks`)
    instead of the curated training tools. With `generated_share` 0 no draw is made for it, so a
    seed's samples are what they were before the generated tools existed.
    """
    held = heldout_tools(seed, heldout_fraction)
    by_split = {
        "heldout": [t for t in tasks() if t.tool.name in held],
        "train": [t for t in tasks() if t.tool.name not in held],
    }
    return drawn_samples(f"templated:{seed}", range(start, start + n), by_split, heldout_share=heldout_fraction,
                         mix=mix, generated=list(generated_tasks()), generated_share=generated_share,
                         vary_names=vary_names)


def drawn_samples(key: str, indices: Iterable[int], by_split: dict[str, list[Task]], *, heldout_share: float,
                  mix: dict[str, float] | None, generated: list[Task], generated_share: float,
                  vary_names: float) -> list[Sample]:
    """Sample i of each index: a pure function of (key, i). A share `heldout_share` of them is
    held out (offers only `by_split["heldout"]`'s tasks), the rest trains; a share
    `generated_share` of the training samples is built on `generated` instead, and a share
    `vary_names` of them is renamed."""
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(SCENARIOS)
    if unknown or not any(w > 0 for w in mix.values()):
        raise ValueError(f"templated mix: scenarios are {', '.join(SCENARIOS)} with a weight > 0 (got {mix})")
    if not by_split["train"] and not by_split["heldout"]:
        raise ValueError("templated samples: no task to build them from")
    out = []
    for i in indices:
        rng = random.Random(f"{key}:{i}")
        split = "heldout" if rng.random() < heldout_share else "train"
        if not by_split[split]:
            split = "train" if split == "heldout" else "heldout"
        scenario = rng.choices(list(mix), weights=list(mix.values()))[0]
        pool = by_split[split]
        if split == "train" and generated_share > 0 and rng.random() < generated_share and generated:
            pool = generated
        sample = _sample(rng, pool, scenario, split)
        if split == "train" and rng.random() < vary_names:
            sample = renamed(sample, rng)
        out.append(sample)
    return out


# Words that may stand in for one another in a tool's or parameter's name.
SYNONYMS = {
    "get": ("fetch", "lookup", "query"), "find": ("search", "lookup", "locate"), "search": ("find", "query"),
    "book": ("reserve", "schedule"), "create": ("add", "make", "new"), "send": ("post", "deliver"),
    "set": ("change", "update", "adjust"), "add": ("put", "insert"), "list": ("show", "browse"),
    "city": ("town", "location", "place"), "date": ("day", "on_date"), "time": ("at", "start_time"),
    "name": ("full_name", "person"), "text": ("content", "message_text"), "email": ("address", "mail"),
    "to": ("recipient",), "room": ("area", "space"), "quantity": ("count", "amount_of", "qty"),
    "limit": ("max_results", "count"), "amount": ("sum", "value"), "topic": ("subject", "query"),
}


def _style(words: list[str], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    return "_".join(words)


def _vary(name: str, rng: random.Random, style: str) -> str:
    words = [rng.choice((w, *SYNONYMS[w])) if w in SYNONYMS and rng.random() < 0.5 else w for w in name.split("_")]
    return _style("_".join(words).split("_"), style)


def renamed(sample: Sample, rng: random.Random) -> Sample:
    """The sample with its tools' and parameters' names varied (synonyms, camelCase, PascalCase)
    and the parameters in another order, the label renamed to match: a model trained on it must
    read names from the tool list instead of recalling the training tools'."""
    tools, names, params = [], {}, {}
    for tool in sample.tools:
        style = rng.choice(("snake", "camel", "pascal"))
        new = _vary(tool.name, rng, style)
        props = tool.parameters.get("properties", {})
        mapping: dict[str, str] = {}
        for p in props:
            candidate = _vary(p, rng, "snake" if style == "pascal" else style)
            # Not a name another parameter has or gets ("limit" -> "count" beside a "count"): two
            # parameters under one name would leave one out of the schema.
            taken = candidate in mapping.values() or (candidate != p and candidate in props)
            mapping[p] = p if taken else candidate
        order = list(props)
        rng.shuffle(order)
        schema = {**tool.parameters, "properties": {mapping[p]: props[p] for p in order},
                  "required": [mapping[p] for p in tool.parameters.get("required", [])]}
        tools.append(tool.model_copy(update={"name": new, "parameters": schema}))
        names[tool.name], params[tool.name] = new, mapping
    calls = [ToolCall(name=names[c.name], arguments={params[c.name][k]: v for k, v in c.arguments.items()})
             for c in sample.label.calls]
    label = Label(calls=calls) if calls else sample.label
    return Sample(origin=sample.origin, messages=[system_message(tools), *sample.messages[1:]], tools=tools,
                  label=label, split=sample.split, scenario=sample.scenario, exact=sample.exact)


def _sample(rng: random.Random, pool: list[Task], scenario: str, split: str) -> Sample:
    texts = _data()["no_call_replies"]
    if scenario == "parallel" and len(pool) >= 2:
        first, second = rng.sample(pool, 2)
        (text1, call1), (text2, call2) = _fill(rng, first), _fill(rng, second)
        user = _joined([text1, text2])
        offered, label = [first, second], Label(calls=[call1, call2])
    elif scenario == "missing_argument" and (candidates := [t for t in pool if len(t.complete()) < len(t.requests)]):
        task = rng.choice(candidates)
        request = rng.choice([r for r in task.requests if task.missing(r)])
        user, _ = _fill(rng, task, request)
        offered, label = [task], _missing_label(task, task.missing(request)[0])
    elif scenario == "irrelevant":
        user = rng.choice(_data()["irrelevant_requests"])
        offered, label = [rng.choice(pool)], Label(text=texts["irrelevant"])
    else:
        scenario = "single"
        task = rng.choice(pool)
        user, call = _fill(rng, task)
        offered, label = [task], Label(calls=[call])
    distractors = [t for t in pool if t not in offered]
    offered += rng.sample(distractors, min(len(distractors), rng.randint(1, 2)))
    rng.shuffle(offered)
    tools = [t.tool for t in offered]
    return Sample(origin="seed", messages=[system_message(tools), Message(role="user", content=user)],
                  tools=tools, label=label, split=split, scenario=f"templated_{scenario}", exact=True)  # fmt: skip


def _fill(rng: random.Random, task: Task, request: Request | None = None) -> tuple[str, ToolCall]:
    """A request of the task with its slots filled, and the call it asks for."""
    request = request or rng.choice(task.complete())
    args: dict[str, Any] = {}
    taken: dict[Any, set] = {}
    for slot in request.slots:
        pool = task.pools[slot]
        if isinstance(pool, str):
            args[slot] = _draw(rng, pool, taken.setdefault(pool, set()))
        else:  # a value shaped by the tool's schema (tool_tasks.Shape): it draws and says its own values
            args[slot] = pool.draw(rng, taken)
    said = {k: str(v) if isinstance(task.pools[k], str) else task.pools[k].say(v) for k, v in args.items()}
    return request.text.format(**said), ToolCall(name=task.tool.name, arguments={**args, **request.fixed})


def _draw(rng: random.Random, pool: str, taken: set) -> Any:
    """A value from the pool, not one already used in the same request (origin != destination)."""
    kind, _, size = pool.partition(":")
    if pool.startswith("int:"):
        low, high = (int(x) for x in pool.split(":")[1:])
        values: list[Any] = list(range(low, high + 1))
    elif pool in ("date", "date-time", "date-time-z"):  # many values, so a model must copy them rather than recall them
        day = (date(2026, 1, 1) + timedelta(days=rng.randrange(3 * 365))).isoformat()
        if pool != "date":
            day += f"T{rng.randrange(24):02d}:{5 * rng.randrange(12):02d}:00" + ("Z" if pool == "date-time-z" else "")
        values = [day]
    elif pool in ("time", "time-seconds"):
        values = [f"{rng.randrange(24):02d}:{5 * rng.randrange(12):02d}" + (":00" if pool == "time-seconds" else "")]
    elif pool == "uuid":
        values = [str(uuid.UUID(int=rng.getrandbits(128), version=4))]
    elif pool == "ipv4":
        values = [f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"]
    elif kind in ("digits", "upper", "lower"):
        letters = {"digits": "0123456789", "upper": "ABCDEFGHJKLMNPQRSTUVWXYZ", "lower": "abcdefghijkmnpqrstuvwxyz"}
        values = ["".join(rng.choice(letters[kind]) for _ in range(int(size)))]
    else:
        values = list(_data()["pools"][pool])
    value = rng.choice([v for v in values if v not in taken] or values)
    taken.add(value)
    return value


def _joined(requests: list[str]) -> str:
    """Requests as one user message: "<first> Also, <second, first letter lowered>"."""
    return requests[0] + "".join(f"{ALSO}{r[0].lower()}{r[1:]}" for r in requests[1:])


def label(name: str) -> str:
    """A parameter's name in words: "target_temp" and "targetTemp" -> "target temp"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    spaced = spaced.replace("_", " ").replace("-", " ").replace(".", " ")
    return " ".join(spaced.lower().split()) or name


def _missing_label(task: Task, param: str) -> Label:
    description = (task.tool.parameters["properties"][param].get("description") or "").strip().rstrip(".").strip()
    if task.from_schema:  # a user's description need not be a noun phrase ("Whether to lock it"): name the parameter
        words = label(param)
        description = f"{words} ({description})" if description and description.lower() != words else words
    return Label(text=_data()["no_call_replies"]["missing"].format(description_lower=description.lower()))


# -- the templated expander ----------------------------------------------------------------------

VARY_NAMES = 0.5  # the share of training variants whose names are varied (as templated_samples)
REDRAWS = 8  # draws of a request before a variant settles for the seed's own wording (a template without slots)


class NotTemplated(ValueError):
    """A sample the templated expander cannot vary: not an exact templated sample, or its tools are
    not the curated ones."""


def _schema_key(tool: ToolSpec) -> list[str]:
    # `renamed` changes the parameters' names and order, never their schemas.
    return sorted(canonical_json(p) for p in tool.parameters.get("properties", {}).values())


@cache
def _by_description() -> dict[str, Task]:
    out: dict[str, Task] = {}
    for task in (*tasks(), *generated_tasks()):
        first = out.setdefault(task.tool.description, task)
        if first is not task:
            raise ValueError(f"templated data: {first.tool.name} and {task.tool.name} share the description "
                             f"{task.tool.description!r}; descriptions must be unique, they trace renamed tools back")
    return out


def curated_task(tool: ToolSpec) -> Task | None:
    """The curated (or generated) task a tool is, renamed or not: the one with its description and
    parameter schemas (`renamed` keeps both); None for any other tool."""
    task = _by_description().get(tool.description)
    return task if task is not None and _schema_key(task.tool) == _schema_key(tool) else None


def tool_task_of(tool: ToolSpec) -> Task | None:
    """The task built from the tool's own schema (tool_tasks.py: `seed --templated --from-tools`), or
    None when it cannot be templated."""
    from looptool.seed.tool_tasks import NotTemplatable, tool_task  # (tool_tasks builds on this module)

    try:
        return tool_task(tool)
    except NotTemplatable:
        return None


def curated_tasks_by_split(samples: Iterable[Sample]) -> dict[str, list[Task]]:
    """The curated (and generated) tasks the samples offer, by split, and the tasks built from the
    tools of the templated samples on a workspace's own tools: the tools a variant of that split may
    offer as distractors (held-out tools never appear in training samples, so none reaches a
    training variant either; `variant` keeps to the seed's kind of task)."""
    seen: dict[str, set[str]] = {}
    own: dict[str, dict[str, Task]] = {}
    for sample in samples:
        names = seen.setdefault(sample.split, set())
        for tool in sample.tools:
            task = curated_task(tool)
            if task is not None:
                names.add(task.tool.name)
            elif sample.exact and (sample.scenario or "").startswith("templated_") and \
                    tool.name not in own.setdefault(sample.split, {}) and (task := tool_task_of(tool)) is not None:
                own[sample.split][tool.name] = task
    return {split: [*(t for t in (*tasks(), *generated_tasks()) if t.tool.name in names),
                    *(task for _, task in sorted(own.get(split, {}).items()))] for split, names in seen.items()}


def _pattern(request: Request) -> re.Pattern[str]:
    # Literal text between the slots; case-blind, since a parallel sample's second request starts lowered.
    parts = _SLOT.split(request.text)  # literal, slot name, literal, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "(.+?)" for i, p in enumerate(parts)),
                      re.IGNORECASE | re.DOTALL)


def _request_of(task: Task, text: str, candidates: Iterable[Request] | None = None) -> Request | None:
    """The template of the task the text was made from, or None."""
    return next((r for r in (task.requests if candidates is None else candidates) if _pattern(r).fullmatch(text)),
                None)


@dataclass(frozen=True)
class _Traced:
    """A templated sample read back: its scenario, the curated tasks it offers, the tasks its label
    is about (in call order) with the request each was asked by (None when not recognised)."""

    scenario: str  # single, parallel, missing_argument, irrelevant
    offered: list[Task]
    targets: list[tuple[Task, Request | None]]
    user: str
    from_schema: bool = False  # its tasks are built from its tools' own schemas (`seed --templated --from-tools`)


def _trace(sample: Sample) -> _Traced:
    scenario = (sample.scenario or "").removeprefix("templated_")
    if not sample.exact:
        raise NotTemplated("its label is not exact")
    if not (sample.scenario or "").startswith("templated_") or scenario not in SCENARIOS:
        raise NotTemplated(f"its scenario {sample.scenario!r} is not a templated one")
    if [m.role for m in sample.messages] != ["system", "user"]:
        raise NotTemplated("it is not a single request")
    user = sample.messages[-1].content or ""
    curated = {tool.name: curated_task(tool) for tool in sample.tools}
    # A sample offers curated (and generated) tools, or the workspace's own: then every one of its tasks is rebuilt
    # from the tool's schema, and its request must be one those tasks make (any exact sample could offer any tool).
    from_schema = bool(curated) and all(task is None for task in curated.values())
    offered: dict[str, Task] = {}
    for tool in sample.tools:
        task = tool_task_of(tool) if from_schema else curated[tool.name]
        if task is None:
            raise NotTemplated(f"its tool {tool.name!r} is not one of the curated tools" +
                               (", and its schema cannot be templated" if from_schema else ""))
        offered[tool.name] = task
    unmade = (f"its tools ({', '.join(offered)}) are each not one of the curated tools, and its request was not "
              f"made from their schemas: {user[:80]!r}")
    calls = sample.label.calls
    targets: list[tuple[Task, Request | None]] = []
    if scenario in ("single", "parallel"):
        if len(calls) != (1 if scenario == "single" else 2) or any(c.name not in offered for c in calls):
            raise NotTemplated(f"its label does not fit a templated {scenario} sample")
        parts = user.split(ALSO, 1) if scenario == "parallel" else [user]
        if len(parts) != len(calls):
            parts = [""] * len(calls)  # wording not recognised: any request of the task will do
        targets = [(offered[c.name], _request_of(offered[c.name], part)) for c, part in zip(calls, parts)]
        if from_schema and any(request is None for _, request in targets):
            raise NotTemplated(unmade)
    elif scenario == "missing_argument":
        found = [(t, r) for t in offered.values()
                 if (r := _request_of(t, user, [r for r in t.requests if t.missing(r)])) is not None]
        if not found:
            raise NotTemplated("its request matches no missing-argument template of its tools")
        targets = found[:1]
    elif from_schema and user not in _data()["irrelevant_requests"]:
        raise NotTemplated(unmade)
    return _Traced(scenario, list(offered.values()), targets, user, from_schema)


def sample_tasks(sample: Sample) -> list[Task]:
    """The tasks of a templated sample's tools (curated, generated or built from their schemas), or
    none when the templated expander cannot vary it."""
    try:
        return _trace(sample).offered
    except NotTemplated:
        return []


def why_not_templated(sample: Sample) -> str | None:
    """Why the templated expander cannot vary the sample, or None when it can."""
    try:
        _trace(sample)
    except NotTemplated as exc:
        return str(exc)
    return None


def _another(rng: random.Random, options: list[Any], current: Any) -> Any:
    """One of the options other than `current` where there is one."""
    return rng.choice([o for o in options if o != current] or options)


def _reworded(rng: random.Random, traced: _Traced) -> tuple[str, Label]:
    """The seed's request asked anew (another template where there is one, other values), and its label."""
    if traced.scenario in ("single", "parallel"):
        filled = [_fill(rng, task, _another(rng, task.complete(), request)) for task, request in traced.targets]
        return _joined([text for text, _ in filled]), Label(calls=[call for _, call in filled])
    if traced.scenario == "missing_argument":
        ((task, request),) = traced.targets
        assert request is not None
        param = task.missing(request)[0]  # the detail the label asks for: a variant leaves out the same one
        user, _ = _fill(rng, task, _another(rng, [r for r in task.requests if task.missing(r)[:1] == [param]],
                                            request))
        return user, _missing_label(task, param)
    user = _another(rng, list(_data()["irrelevant_requests"]), traced.user)
    return user, Label(text=_data()["no_call_replies"]["irrelevant"])


def variant(sample: Sample, *, seed: str, pool: Sequence[Task] = (), vary_names: float = VARY_NAMES) -> Sample:
    """A new sample that sets the templated sample's trap again (see the module docstring), as an
    expansion of it: origin "expanded", parent_id the sample's id, the same split and scenario,
    exact. The same `seed` string makes the same variant.

    The label's tasks stay; an irrelevant sample keeps every tool it offers and gets another
    irrelevant request. Distractors come from the sample's own tools and `pool`, which must hold
    only tools of the sample's split (`curated_tasks_by_split`). Raises NotTemplated for a sample
    that is not a templated one (`why_not_templated`)."""
    traced = _trace(sample)
    rng = random.Random(f"templated-variant:{seed}")
    for _ in range(REDRAWS):  # a request the seed did not already make, where the templates allow one
        user, label = _reworded(rng, traced)
        if user != traced.user:
            break
    if traced.scenario == "irrelevant":
        offered = list(traced.offered)
    else:
        kept = [task for task, _ in traced.targets]
        kept_names = {t.tool.name for t in kept}
        same_kind = [t for t in pool if t.from_schema == traced.from_schema]  # no mix of curated and own tools
        candidates = {t.tool.name: t for t in [*traced.offered, *same_kind] if t.tool.name not in kept_names}
        distractors = rng.sample(sorted(candidates.values(), key=lambda t: t.tool.name),
                                 min(len(candidates), rng.randint(1, 2)))
        offered = kept + distractors
    rng.shuffle(offered)
    tools = [t.tool for t in offered]
    made = Sample(messages=[system_message(tools), Message(role="user", content=user)], tools=tools, label=label,
                  split=sample.split, scenario=sample.scenario, exact=True)
    if sample.split == "train" and rng.random() < vary_names and not traced.from_schema:  # (a user's names stay)
        made = renamed(made, rng)
    # Built anew, so that the id hashes the parent too.
    return Sample(parent_id=sample.id, origin="expanded", messages=made.messages, tools=made.tools, label=made.label,
                  split=sample.split, scenario=sample.scenario, exact=True)
