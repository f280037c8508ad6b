"""The expander agent (EDDE): new samples around an error sample.

Given a sample the policy got wrong (the judge said the prediction, not the label, was wrong), the
expander writes one new sample with the same call structure -- the same functions called, as
many calls -- in a new situation, varying one dimension: complexity, persona, interaction style
or data values. The new sample is a single user turn over the parent's tools.

Output schema (built per parent): {"user": str, "call_1": <arguments of the label's first call>,
...} for a call label, or {"user": str, "reply": str} for a no-call label; each call's arguments
are constrained by its tool's parameter schema. A new sample is then validated (tool names exist,
arguments valid against the schema) before the judge checks it (see `agents.judge.check_label`).
"""

from __future__ import annotations

import random
from typing import Any

from looptool.agents.base import AgentResult, arguments_schema, ask_json, tool_signatures, transcript
from looptool.agents.judge import answer_text
from looptool.prompts import render
from looptool.schema import Label, Message, Sample, ToolCall
from looptool.seed.scenarios import personas
from looptool.serving.client import Endpoint, ModelOutputError
from looptool.tools_sim.validate import argument_errors
from looptool.training.templates import system_message

PROMPT_REF = "agents/expander.md"
DIMENSIONS = ("complexity", "persona", "style", "values")
USER_SCHEMA = {"type": "string", "minLength": 8, "maxLength": 600}
REPLY_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 400}


def dimension(parent_id: str, round: int, slot: int) -> str:
    """The dimension expansion `slot` of a parent varies: consecutive slots take consecutive
    dimensions from a start drawn per (parent, round), so k < 4 expansions still vary."""
    start = random.Random(f"expand:{parent_id}:{round}").randrange(len(DIMENSIONS))
    return DIMENSIONS[(start + slot) % len(DIMENSIONS)]


def expander_schema(parent: Sample) -> dict[str, Any]:
    specs = {t.name: t for t in parent.tools}
    properties: dict[str, Any] = {"user": USER_SCHEMA}
    if parent.label.calls:
        for i, call in enumerate(parent.label.calls, start=1):
            properties[f"call_{i}"] = arguments_schema(specs[call.name])
    else:
        properties["reply"] = REPLY_SCHEMA
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def expander_prompt(parent: Sample, vary: str, persona: str) -> str:
    if parent.label.calls:
        listing = ", ".join(f"call_{i} = {c.name}" for i, c in enumerate(parent.label.calls, start=1))
        fields = render("looptool.agents", "expander_fields_calls", calls=listing)
    else:
        fields = render("looptool.agents", "expander_fields_reply")
    variation = render("looptool.agents", f"expander_vary_{vary}", persona=persona)
    return render("looptool.agents", "expander", variation=variation, fields=fields,
                  tools=tool_signatures(parent.tools),
                  conversation=transcript([m for m in parent.messages if m.role != "system"]),
                  answer=answer_text(parent.label.calls, parent.label.text))  # fmt: skip


def new_sample(parent: Sample, answer: dict[str, Any], round: int, vary: str) -> Sample:
    """The expansion as a sample; ModelOutputError when it is not a valid one."""
    specs = {t.name: t for t in parent.tools}
    user = " ".join(str(answer["user"]).split())
    if len(user) < 8:
        raise ModelOutputError("expander: the user message is empty")
    if parent.label.calls:
        calls = [ToolCall(name=c.name, arguments=answer[f"call_{i}"]) for i, c in enumerate(parent.label.calls, 1)]
        for call in calls:
            errors = argument_errors(specs[call.name], call)
            if errors:
                raise ModelOutputError(f"expander: {call.name}: {errors[0].path or '(arguments)'}: {errors[0].message}")
        label = Label(calls=calls)
    else:
        label = Label(text=" ".join(str(answer["reply"]).split()))
    return Sample(parent_id=parent.id, origin="expanded", round_added=round + 1,
                  messages=[system_message(parent.tools), Message(role="user", content=user)],
                  tools=list(parent.tools), label=label, split=parent.split,
                  scenario=f"{parent.scenario or 'unknown'}/{vary}")  # fmt: skip


async def expand_sample(endpoint: Endpoint, parent: Sample, round: int, slot: int, *, max_attempts: int,
                        temperature: float) -> AgentResult[Sample]:
    """One expansion of `parent` (its `slot`-th) for the round after `round`."""
    vary = dimension(parent.id, round, slot)
    persona = random.Random(f"expand-persona:{parent.id}:{round}:{slot}").choice(personas())
    return await ask_json(
        "expander", PROMPT_REF, endpoint, expander_prompt(parent, vary, persona), expander_schema(parent),
        lambda answer: new_sample(parent, answer, round, vary), max_attempts=max_attempts,
        temperature=temperature, max_tokens=200 + 160 * max(1, len(parent.label.calls)),
    )  # fmt: skip
