"""The expander agent (EDDE): new samples around an expansion seed.

A seed is a sample of the round that the policy got wrong (PRED_WRONG) or whose label the judge
replaced (LABEL_WRONG, expanded with its corrected label). The expander sees the tools, the
seed's conversation, the correct answer, the wrong answer (the policy's prediction, or the label
the judge rejected) and the judge's analysis of the mistake, and writes one new sample that sets
the same trap in a new situation, varying one dimension: complexity, persona, interaction style
or data values. A new sample may carry earlier exchanges and may call more of the seed's tools,
or once more, than the seed does.

Output schema (built per seed, every call item an `anyOf` over the seed's tools, each
{"name": <const>, "arguments": <its parameter schema>}, the form `agents/assistant.py` decodes):
* a call seed: {"history": [{"user": str, "calls": [{"name", "arguments", "result": str}, ...],
  "reply": str}, ...], "user": str, "calls": [{"name", "arguments"}, ...]} -- at most MAX_HISTORY
  earlier exchanges (at least one when the dimension is complexity), then the last user message
  and its correct calls, as many as the seed's label has or one more;
* a no-call seed: {"user": str, "reply": str}.
The new sample is validated (tool names are the seed's, arguments valid against the schema)
before the judge checks it (see `agents.judge.check_label`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from looptool.agents.base import AgentResult, arguments_schema, ask_json, tool_signatures, transcript
from looptool.agents.judge import answer_text
from looptool.agents.personas import personas
from looptool.policy.prompt import system_message
from looptool.prompts import render
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.serving.client import Endpoint, ModelOutputError
from looptool.tools_sim.validate import argument_errors

PROMPT_REF = "agents/expander.md"
DIMENSIONS = ("complexity", "persona", "style", "values")
USER_SCHEMA = {"type": "string", "minLength": 8, "maxLength": 600}
REPLY_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 400}
# The earlier exchanges are kept short: a small model fills them under a grammar, and prompt plus
# answer must fit a small server's context.
MAX_HISTORY = 2
MAX_HISTORY_CALLS = 2
HISTORY_USER_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 300}
RESULT_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 200}
HISTORY_REPLY_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 200}
REPLY_MAX_TOKENS = 400  # a no-call seed's answer: a user message and a reply


@dataclass(frozen=True)
class ExpansionSeed:
    """A sample to expand and what went wrong on it: its label is the correct answer, `wrong` the
    answer the judge rejected (as `answer_text` writes it), `analysis` the judge's analysis."""

    sample: Sample
    wrong: str
    analysis: str


def dimension(parent_id: str, round: int, slot: int) -> str:
    """The dimension expansion `slot` of a parent varies: consecutive slots take consecutive
    dimensions from a start drawn per (parent, round), so k < 4 expansions still vary."""
    start = random.Random(f"expand:{parent_id}:{round}").randrange(len(DIMENSIONS))
    return DIMENSIONS[(start + slot) % len(DIMENSIONS)]


def call_range(label: Label) -> tuple[int, int]:
    """How many calls a new sample's answer has: at least the seed's (fewer would lose an error of
    a missed call), at most one more."""
    return len(label.calls), len(label.calls) + 1


def _call_item(spec: ToolSpec, with_result: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"name": {"const": spec.name}, "arguments": arguments_schema(spec)}
    if with_result:
        properties["result"] = RESULT_SCHEMA
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _calls_schema(tools: Sequence[ToolSpec], low: int, high: int, *, with_result: bool = False) -> dict[str, Any]:
    return {"type": "array", "items": {"anyOf": [_call_item(t, with_result) for t in tools]}, "minItems": low,
            "maxItems": high}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def expander_schema(seed: Sample, vary: str) -> dict[str, Any]:
    if not seed.label.calls:
        return _object({"user": USER_SCHEMA, "reply": REPLY_SCHEMA})
    exchange = _object({"user": HISTORY_USER_SCHEMA,
                        "calls": _calls_schema(seed.tools, 1, MAX_HISTORY_CALLS, with_result=True),
                        "reply": HISTORY_REPLY_SCHEMA})
    history = {"type": "array", "items": exchange, "minItems": 1 if vary == "complexity" else 0,
               "maxItems": MAX_HISTORY}
    calls = _calls_schema(seed.tools, *call_range(seed.label))
    return _object({"history": history, "user": USER_SCHEMA, "calls": calls})


def expander_prompt(seed: ExpansionSeed, vary: str, persona: str) -> str:
    s = seed.sample
    if s.label.calls:
        low, high = call_range(s.label)
        history = "one or two" if vary == "complexity" else "none, one or two"
        fields = render("looptool.agents", "expander_fields_calls", history=history, calls=f"{low} or {high} of them")
    else:
        fields = render("looptool.agents", "expander_fields_reply")
    variation = render("looptool.agents", f"expander_vary_{vary}", persona=persona)
    return render("looptool.agents", "expander", tools=tool_signatures(s.tools),
                  conversation=transcript([m for m in s.messages if m.role != "system"]),
                  answer=answer_text(s.label.calls, s.label.text), wrong=seed.wrong,
                  analysis=seed.analysis or "(none given)", variation=variation, fields=fields)  # fmt: skip


def _text(value: Any, what: str, least: int = 2) -> str:
    text = " ".join(str(value).split())
    if len(text) < least:
        raise ModelOutputError(f"expander: the {what} is empty")
    return text


def _calls(items: Sequence[dict[str, Any]], specs: dict[str, ToolSpec], where: str) -> list[ToolCall]:
    calls = []
    for item in items:
        call = ToolCall(name=item["name"], arguments=item["arguments"])
        if call.name not in specs:
            raise ModelOutputError(f"expander: {where}: {call.name!r} is not one of the tools")
        errors = argument_errors(specs[call.name], call)
        if errors:
            raise ModelOutputError(f"expander: {where}: {call.name}: {errors[0].path or '(arguments)'}: "
                                   f"{errors[0].message}")
        calls.append(call)
    return calls


def new_sample(seed: Sample, answer: dict[str, Any], round: int, vary: str) -> Sample:
    """The expansion as a sample: the system message, the earlier exchanges (user, the assistant's
    calls, their results, the assistant's reply), then the last user message; the label is the
    answer's calls (or reply). ModelOutputError when it is not a valid sample."""
    specs = {t.name: t for t in seed.tools}
    messages = [system_message(seed.tools)]
    if seed.label.calls:
        for n, exchange in enumerate(answer.get("history") or [], start=1):
            where = f"history {n}"
            calls = _calls(exchange["calls"], specs, where)
            messages.append(Message(role="user", content=_text(exchange["user"], f"{where} user message")))
            asked = len(messages)
            messages.append(Message(role="assistant", tool_calls=calls))
            for j, (item, call) in enumerate(zip(exchange["calls"], calls)):
                messages.append(Message(role="tool", name=call.name, tool_call_id=f"call_{asked}_{j}",
                                        content=_text(item["result"], f"{where} result")))
            messages.append(Message(role="assistant", content=_text(exchange["reply"], f"{where} reply")))
        label = Label(calls=_calls(answer["calls"], specs, "calls"))
    else:
        label = Label(text=_text(answer["reply"], "reply"))
    messages.append(Message(role="user", content=_text(answer["user"], "user message", least=8)))
    return Sample(parent_id=seed.id, origin="expanded", round_added=round + 1, messages=messages,
                  tools=list(seed.tools), label=label, split=seed.split,
                  scenario=f"{seed.scenario or 'unknown'}/{vary}")  # fmt: skip


async def expand_sample(endpoint: Endpoint, seed: ExpansionSeed, round: int, slot: int, *, max_attempts: int,
                        temperature: float, max_tokens: int) -> AgentResult[Sample]:
    """One expansion of `seed` (its `slot`-th) for the round after `round`; `max_tokens` bounds an
    answer with calls (`[loop] expander_max_tokens`)."""
    parent = seed.sample
    vary = dimension(parent.id, round, slot)
    persona = random.Random(f"expand-persona:{parent.id}:{round}:{slot}").choice(personas())
    return await ask_json(
        "expander", PROMPT_REF, endpoint, expander_prompt(seed, vary, persona), expander_schema(parent, vary),
        lambda answer: new_sample(parent, answer, round, vary), max_attempts=max_attempts,
        temperature=temperature, max_tokens=max_tokens if parent.label.calls else min(max_tokens, REPLY_MAX_TOKENS),
    )  # fmt: skip
