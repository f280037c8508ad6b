"""Domain types shared by every stage: tools, calls, messages, dialogues, samples, probes,
verdicts and rounds.

These are plain pydantic models. They validate on construction, serialise to JSON for the store,
and carry stable ids so that re-running a stage upserts the same rows instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Iterable
from typing import Any, Literal, get_args

import jsonschema
import referencing
import referencing.exceptions
from pydantic import (BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationInfo, field_validator,
                      model_serializer, model_validator)

TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Bounds on JSON read from files (tool files, outputs files). Real tool schemas nest a few levels;
# deeper input is an attack or an accident, and unbounded it ends in RecursionError somewhere
# (the JSON parser, jsonschema, pydantic) instead of an error that names the file and line.
MAX_JSON_DEPTH = 64


class JSONLimitError(ValueError):
    """JSON that LoopTool will not read: nested too deep, an integer too long to convert, or a
    string that is not valid Unicode (an escaped lone surrogate). `lineno` is where, 1-based."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


_LONG_INT = re.compile(r"\d{%d,}" % (sys.get_int_max_str_digits() or 4300))
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def load_json(text: str) -> Any:
    """`json.loads` with bounds: JSONLimitError (one line, with the line it is on) for nesting
    deeper than MAX_JSON_DEPTH, an integer longer than Python converts, or a lone surrogate;
    json.JSONDecodeError for text that is not JSON."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {MAX_JSON_DEPTH} levels", _deep_line(text)) from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise JSONLimitError("an integer too long to read", _line_of(text, _LONG_INT.search(text))) from None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JSONLimitError(f"nested deeper than {MAX_JSON_DEPTH} levels", _deep_line(text))
        if isinstance(node, dict):
            stack.extend((k, depth) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise JSONLimitError("a string holds a lone surrogate (\\ud800-\\udfff): not valid Unicode",
                                     _line_of(text, _LONE_SURROGATE.search(text))) from None
    return value


def _line_of(text: str, match: re.Match[str] | None) -> int:
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _deep_line(text: str) -> int:
    """The line where nesting first goes deeper than MAX_JSON_DEPTH (strings skipped)."""
    depth, in_string, escaped, line = 0, False, False, 1
    for char in text:
        if char == "\n":
            line += 1
        elif in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return line
        elif char in "]}":
            depth -= 1
    return line


def stable_id(prefix: str, *parts: Any) -> str:
    """A short id derived from content, so the same content always gets the same id."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]
    return f"{prefix}_{digest}"


def ids_matching(prefix: str, ids: Iterable[str]) -> list[str]:
    """The ids a user's `prefix` names: the one equal to it, else every id that starts with it (a
    unique prefix is as good as the whole id; an exact id wins over longer ids it starts)."""
    ids = list(ids)
    return [prefix] if prefix in ids else [i for i in ids if i.startswith(prefix)]


# ---------------------------------------------------------------------------------------------
# JSON Schema validation that never leaves the schema
#
# jsonschema's default resolution fetches a `$ref` it does not know: an http:// URL with a GET, a
# file:// URL by reading the file. A tool schema comes from files and models we do not trust, so
# every validation in LoopTool goes through `schema_validator`, whose registry refuses to retrieve
# anything; and ToolSpec refuses non-local references when a tool is made (`schema_problem`).

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _refuse_retrieval(uri: str) -> referencing.Resource:
    raise referencing.exceptions.NoSuchResource(ref=uri)


NO_RETRIEVAL = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def closed_schema(schema: Any) -> Any:
    """A copy of the schema where every object without `additionalProperties` forbids extras."""
    if isinstance(schema, list):
        return [closed_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_schema(v) if k in ("items", "anyOf", "oneOf", "allOf") else v for k, v in schema.items()}
    if "properties" in out:
        out["properties"] = {k: closed_schema(v) for k, v in schema["properties"].items()}
        if schema.get("type", "object") == "object" and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    return out


def schema_validator(schema: Any, *, format_checker: jsonschema.FormatChecker | None = None) -> Any:
    """A jsonschema validator for `schema` whose references resolve only inside it.

    A reference it cannot resolve raises `referencing.exceptions.Unresolvable` while validating
    (callers turn that into their own one-line error); nothing is fetched or opened.
    """
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=NO_RETRIEVAL, format_checker=format_checker)


def schema_problem(schema: Any, path: str) -> str | None:
    """The first thing in a tool schema that LoopTool refuses, as '<path>: why' (None if none):

    - a reference that points outside the schema: only '#/$defs/x' or '#anchor' may be used;
    - a number that is not finite (NaN, Infinity): JSON has none, so it would be stored as null
      and the schema would no longer be valid when it is read back;
    - nesting deeper than MAX_JSON_DEPTH.

    The walk is iterative, so a deeply nested schema cannot exhaust the stack here.
    """
    stack = [(schema, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:  # jsonschema and pydantic recurse: keep them off the stack's end
            return f"{where}: nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(node, dict):
            for key, value in node.items():
                if key in REF_KEYWORDS and not (isinstance(value, str) and value.startswith("#")):
                    return (f"{where}.{key}: only references inside the schema ('#/...') are allowed, "
                            f"got {str(value)[:80]!r}")
                stack.append((value, f"{where}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return f"{where}: {json.dumps(node)} is not a finite number"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# ---------------------------------------------------------------------------------------------
# Tools and calls


class ToolSpec(_Model):
    """One function a model may call, in OpenAI function format.

    `parameters` is a JSON Schema object (checked to be a valid schema of type "object" whose
    `required` names exist in `properties`).
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    returns: dict[str, Any] | None = None  # JSON Schema of the result, when known (not sent to models)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not TOOL_NAME_RE.match(name):
            raise ValueError(f"invalid tool name {name!r}: use letters, digits, '_', '.', '-' (max 128)")
        return name

    @field_validator("parameters")
    @classmethod
    def _check_parameters(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        _check_content(params, "parameters", info)
        if params.get("type") != "object":
            raise ValueError(f"parameters.type must be 'object', got {params.get('type')!r}")
        props = params.get("properties", {})
        if not isinstance(props, dict):
            raise ValueError("parameters.properties must be an object")
        required = params.get("required", [])
        if not isinstance(required, list):
            raise ValueError("parameters.required must be a list")
        missing = [r for r in required if r not in props]
        if missing:
            raise ValueError(f"parameters.required names unknown properties: {missing}")
        try:
            jsonschema.validators.validator_for(params).check_schema(params)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from None
        return params

    @field_validator("returns")
    @classmethod
    def _check_returns(cls, returns: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if returns is not None:
            _check_content(returns, "returns", info)
            try:
                jsonschema.validators.validator_for(returns).check_schema(returns)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"returns is not a valid JSON Schema: {exc.message}") from None
        return returns

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> ToolSpec:
        """Accept `{"type": "function", "function": {...}}` or the bare function object."""
        if data.get("type") == "function" and "function" in data:
            data = data["function"]
        return cls.model_validate({k: v for k, v in data.items() if k in ("name", "description", "parameters")})

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function", "function": self.model_dump(exclude={"returns"})}


def _check_content(schema: dict[str, Any], path: str, info: ValidationInfo) -> None:
    problem = schema_problem(schema, path)
    if problem:
        raise ValueError(f"tool {info.data.get('name', '?')!r}: {problem}")


class ToolCall(_Model):
    """One call: a function name and its keyword arguments."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def key(self) -> str:
        """Canonical string used to compare calls as multiset elements."""
        return canonical_json({"name": self.name, "arguments": self.arguments})


class Label(_Model):
    """What the assistant should do at a turn: a list of calls, or a text with no call.

    `alternatives` are other answers accepted as correct (a judge's BOTH_OK verdict adds the
    policy's answer here): the reward, the probe and the held-out evaluation count a match with
    the label or with any of them. An alternative is itself a plain answer (no alternatives).
    """

    calls: list[ToolCall] = Field(default_factory=list)
    text: str | None = None
    alternatives: list[Label] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_form(self) -> Label:
        if self.calls and self.text is not None:
            raise ValueError("a label is either calls or a no-call text, not both")
        if not self.calls and self.text is None:
            raise ValueError("a label needs calls or a no-call text")
        if any(a.alternatives for a in self.alternatives):
            raise ValueError("an alternative answer cannot have alternatives of its own")
        return self

    @property
    def is_no_call(self) -> bool:
        return not self.calls

    def primary(self) -> Label:
        """The label's own answer, without its alternatives."""
        return Label(calls=self.calls, text=self.text) if self.alternatives else self

    def answers(self) -> list[Label]:
        """Every accepted answer: the label's own first, then its alternatives."""
        return [self.primary(), *self.alternatives]

    def with_alternative(self, answer: Label) -> Label:
        """The label with `answer` accepted too (unchanged when it is already accepted)."""
        plain = answer.primary()
        if any(canonical_json(a.model_dump(mode="json")) == canonical_json(plain.model_dump(mode="json"))
               for a in self.answers()):
            return self
        return self.model_copy(update={"alternatives": [*self.alternatives, plain]})


# ---------------------------------------------------------------------------------------------
# Conversations

Role = Literal["system", "user", "assistant", "tool"]


class Message(_Model):
    """One chat message in OpenAI shape. `agent` names the simulated agent that wrote it."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    agent: str | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role}")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        return self


DialogueStatus = Literal["pending", "running", "done", "failed", "dropped"]


class Dialogue(_Model):
    """A simulated multi-agent conversation over a few tools of one domain."""

    id: str
    plan: dict[str, Any] = Field(default_factory=dict)
    tool_ids: list[str] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    status: DialogueStatus = "pending"
    error: str | None = None
    thread_id: str | None = None


Origin = Literal["seed", "corrected", "expanded"]
Split = Literal["train", "heldout"]


class Sample(_Model):
    """One training example: a context (messages + tools) and the label for the next turn."""

    id: str = ""
    dialogue_id: str | None = None
    parent_id: str | None = None
    origin: Origin = "seed"
    round_added: int = 0
    messages: list[Message]
    tools: list[ToolSpec]
    label: Label
    label_version: int = 1
    active: bool = True
    split: Split = "train"  # "heldout": its tools never appear in training samples
    scenario: str | None = None  # the dialogue scenario it came from (single, parallel, ...)
    # The label is exact by construction (templated tasks, imported ground truth): a failed probe
    # on it is the policy's error by rule, and no judge may replace it.
    exact: bool = False

    @model_validator(mode="after")
    def _fill_id(self) -> Sample:
        # The id hashes the content, not the label: a corrected label keeps the sample's identity.
        if not self.id:
            self.id = stable_id(
                "s",
                [m.model_dump(exclude_none=True) for m in self.messages],
                [t.name for t in self.tools],
                self.parent_id,
            )
        return self


# ---------------------------------------------------------------------------------------------
# The loop

ProbeCategory = Literal["mastered", "failed", "boundary"]


class Probe(_Model):
    """A greedy decode of one sample by a round's model, scored against the label."""

    sample_id: str
    round: int
    prediction: list[ToolCall] | None = None
    raw: str = ""
    correct: bool
    ppl: float | None = None
    category: ProbeCategory | None = None


VerdictKind = Literal["LABEL_WRONG", "PRED_WRONG", "BOTH_OK", "BOTH_WRONG"]
# How a verdict was reached: "judge" -- the judge's answer; "rule" -- by a rule, no judge asked
# (an exact label, an unreadable prediction, a reply that is not language, or an arm that runs
# without the judge); "no_answer" -- the judge was asked but gave no valid verdict, so the label
# was kept; "person" -- a person's override on the same label version in an earlier round, kept.
VerdictBasis = Literal["judge", "rule", "no_answer", "person"]


class Verdict(_Model):
    """The judge's verdict on a failed probe (label vs prediction)."""

    sample_id: str
    round: int
    verdict: VerdictKind
    corrected_label: Label | None = None
    rationale: str = ""
    judge_model: str = ""
    human_override: VerdictKind | None = None
    basis: VerdictBasis = "judge"
    # The sample's label version the verdict is about (None: the one it has when the verdict is stored).
    label_version: int | None = None

    @property
    def effective(self) -> VerdictKind:
        """The verdict that applies: a person's override wins over the judge's (the one place
        that says so)."""
        return self.human_override or self.verdict


# "paused": the loop stopped after one of the round's stages because a pause was asked for.
RoundStatus = Literal["pending", "running", "paused", "done", "failed"]
# The stages of a round, in the order the loop runs them (Round.stage, RoundMetrics.stage_seconds).
Stage = Literal["prepare", "train", "probe", "verify", "expand", "assemble", "evaluate"]
ROUND_STAGES: tuple[Stage, ...] = get_args(Stage)


class _WrittenFigures(BaseModel):
    """Figures stored as one JSON object whose keys say what was measured: dumped, it has the keys
    it was given (built or read from a row), never a default filled in, so a row read and saved
    again is the same row, a null kept as a null. Keys not modelled are kept as they came (rows of
    older versions)."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _keys_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        modelled = type(self).model_fields
        return {k: v for k, v in handler(self).items() if k not in modelled or k in self.model_fields_set}


class ProbeCounts(_WrittenFigures):
    """A round's probe categories (loop/graph.py, from training/probe.py's summary)."""

    mastered: int = 0  # correct with a low perplexity
    boundary: int = 0  # correct, but above the boundary cut (or with no perplexity)
    failed: int = 0  # wrong
    boundary_cut: float | None = None  # the perplexity above which a correct answer is boundary; None: no cut


class EvalMetrics(_WrittenFigures):
    """A round's evaluation (loop/graph.py `evaluate_round`): each suite's accuracy and the id of
    the stored run that scored it (the eval_runs table), present only for the suites evaluated."""

    heldout: float | None = None  # accuracy on the held-out samples; None: no entry scored
    heldout_run: str | None = None
    bfcl: dict[str, float | None] | None = None  # BFCL-v3 category -> accuracy, plus "all" over the entries pooled
    bfcl_run: str | None = None
    # ACEBench category -> accuracy, plus "normal", "special" and "all" (eval/acebench_suite.figures)
    acebench: dict[str, float | None] | None = None
    acebench_run: str | None = None

    def run_ids(self) -> dict[str, str | None]:
        """suite ("heldout", "bfcl", "acebench") -> the id of its run, None where not evaluated."""
        return {"heldout": self.heldout_run, "bfcl": self.bfcl_run, "acebench": self.acebench_run}


class RoundMetrics(BaseModel):
    """What a round measured and how long its stages took: the `rounds` table's metrics column.
    A field that is None was not written, and is left out of the stored row. Keys not modelled
    (rows of older versions) are kept as they came."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    # The round's data by part (loop/assemble.py `record_assembly`): part -> samples, e.g.
    # "fresh_seed", "corrected", "error", "both_ok", "boundary", "expanded", "seed" (arms add theirs).
    composition: dict[str, int] | None = None
    probe: ProbeCounts | None = None  # the probe stage's categories (loop/graph.py)
    # Expansion attempts of the round by status, e.g. "kept", "rejected", "invalid" (loop/graph.py,
    # a copy of the expansions table's counts written as the expand stage ends).
    expansion: dict[str, int] | None = None
    eval: EvalMetrics | None = None  # the evaluate stage's scores (loop/graph.py)
    # The training stages' summaries (training/rounds.py `record_stage`, from training/sft.py and
    # grpo.py): steps, seconds, device, start adapter, and so on. Left open: each trainer writes
    # what it knows (GRPO its KL reference, SFT when it finished), and only "steps" (GRPO's matched
    # by every arm, loop/arms.py) and SFT's "finished" (the TUI's rate) are read back.
    sft: dict[str, Any] | None = None
    grpo: dict[str, Any] | None = None
    # Wall seconds spent in each stage (loop/graph.py `_stage_clock`), by Stage name.
    stage_seconds: dict[str, float] | None = None
    # When the running stage began (ISO time, loop/graph.py `_stage_clock`); None while no stage runs.
    stage_started: str | None = None

    @model_serializer(mode="wrap")
    def _written_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        modelled = type(self).model_fields
        return {k: v for k, v in handler(self).items() if k not in modelled or v is not None}

    def updated(self, **figures: Any) -> RoundMetrics:
        """A copy with these fields set (validated as they are set)."""
        copy = self.model_copy(deep=True)
        for name, value in figures.items():
            setattr(copy, name, value)
        return copy


class Round(_Model):
    """One turn of the loop: train -> probe -> verify -> expand."""

    n: int
    status: RoundStatus = "pending"
    stage: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    adapter_path: str | None = None
    data_ids: list[str] = Field(default_factory=list)
    metrics: RoundMetrics = Field(default_factory=RoundMetrics)


# -- dialogue plans (the seed stage decides them; the seed agents read them) --------------------

TurnKind = Literal["task", "follow_up", "chit_chat", "off_topic"]
ActionKind = Literal["call", "ask", "reply"]



class PlannedCall(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Action(BaseModel):
    """What the assistant should do next: call (these calls), ask (for a missing value), or reply."""

    kind: ActionKind
    calls: list[PlannedCall] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)  # for "ask": the parameters the user left out


class PlanTurn(BaseModel):
    """One user message and the assistant actions that should answer it."""

    kind: TurnKind
    mention: list[dict[str, Any]] = Field(default_factory=list)  # per planned call: the values the user states
    withhold: list[str] = Field(default_factory=list)  # required parameters the user leaves out
    actions: list[Action]


class Plan(BaseModel):
    scenario: str
    split: Literal["train", "heldout"]
    tools: list[str]  # names of the tools the dialogue offers, in prompt order
    persona: str
    goal: str = ""
    turns: list[PlanTurn]

    def calls(self) -> list[PlannedCall]:
        """Every planned call, in plan order (the planner writes their arguments in this order)."""
        return [c for t in self.turns for a in t.actions for c in a.calls]

    def expected(self, turn: int, action: int) -> Action:
        """The action planned at a position; past the plan, a plain reply."""
        if 0 <= turn < len(self.turns) and action < len(self.turns[turn].actions):
            return self.turns[turn].actions[action]
        return Action(kind="reply")


def complete_plan(skeleton: Plan, goal: str, arguments: list[dict[str, Any]]) -> Plan:
    """The skeleton with the planner's goal and the arguments of each planned call (in order);
    each task turn's `mention` lists the values the user states, without the withheld ones."""
    plan = skeleton.model_copy(deep=True)
    plan.goal = goal
    for call, args in zip(plan.calls(), arguments, strict=True):
        call.arguments = args
    for i, turn in enumerate(plan.turns):
        if turn.kind == "task":
            calls = [c for a in turn.actions for c in a.calls]
            if not calls and i + 1 < len(plan.turns) and plan.turns[i + 1].kind == "follow_up":
                calls = [c for a in plan.turns[i + 1].actions for c in a.calls]
            turn.mention = [{k: v for k, v in c.arguments.items() if k not in turn.withhold} for c in calls]
        elif turn.kind == "follow_up" and i:
            withheld = plan.turns[i - 1].withhold
            calls = [c for a in turn.actions for c in a.calls]
            turn.mention = [{k: v for k, v in c.arguments.items() if k in withheld} for c in calls]
    return plan
