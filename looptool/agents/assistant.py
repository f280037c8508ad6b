"""The assistant agent: writes the next assistant turn -- function calls or text. Its turns are
the labels of the seed samples, so each is sampled several times (see seed/graph.py).

Output schema: {"calls": [{"name": <tool>, "arguments": {...}}, ...]} or {"text": str}; every
call item is constrained by its tool's parameter schema. With `hint` guidance the plan's next
action (which tools to call, or to answer in words) is said in the prompt; with `grammar` the
schema also admits only that action and the prompt gives the planned argument values; with `none`
the assistant sees only the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from looptool.agents.base import AgentResult, arguments_schema, ask_json, tool_signatures, transcript
from looptool.prompts import render
from looptool.schema import Action, Label, Message, ToolCall, ToolSpec
from looptool.serving.client import Endpoint, ModelOutputError
from looptool.tools_sim.validate import argument_errors

Guidance = Literal["none", "hint", "grammar"]
PROMPT_REF = "agents/assistant.md"
MAX_CALLS = 4
MAX_TOKENS = 640  # room for a few calls with array arguments
TEXT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 2, "maxLength": 300}},
    "required": ["text"],
    "additionalProperties": False,
}


def _call_item(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": spec.name}, "arguments": arguments_schema(spec)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _calls_schema(specs: Sequence[ToolSpec], min_items: int, max_items: int) -> dict[str, Any]:
    calls = {"type": "array", "items": {"anyOf": [_call_item(s) for s in specs]}, "minItems": min_items, "maxItems": max_items}
    return {"type": "object", "properties": {"calls": calls}, "required": ["calls"], "additionalProperties": False}


def assistant_schema(tools: Sequence[ToolSpec], expected: Action, guidance: Guidance) -> dict[str, Any]:
    if guidance != "grammar":
        return {"anyOf": [_calls_schema(tools, 1, MAX_CALLS), TEXT_SCHEMA]}
    if expected.kind != "call":
        return TEXT_SCHEMA
    by_name = {t.name: t for t in tools}
    planned = list(dict.fromkeys(c.tool for c in expected.calls))
    return _calls_schema([by_name[name] for name in planned], len(expected.calls), len(expected.calls))


def guidance_text(expected: Action, guidance: Guidance) -> str:
    if guidance == "none":
        return ""
    if expected.kind == "call" and guidance == "grammar":
        # The planned calls with their values, which the user's message was made to contain: a
        # small model copies them far more reliably than it finds them, so its samples agree.
        calls = "; ".join(f"{c.tool}({json.dumps(c.arguments, ensure_ascii=False)})" for c in expected.calls)
        return render("looptool.agents", "assistant_hint_call_values", calls=calls)
    if expected.kind == "call":
        return render("looptool.agents", "assistant_hint_call", names=", ".join(c.tool for c in expected.calls))
    if expected.kind == "ask":
        return render("looptool.agents", "assistant_hint_ask", missing=" and ".join(expected.missing) or "a value")
    return render("looptool.agents", "assistant_hint_reply")


def assistant_prompt(tools: Sequence[ToolSpec], history: Sequence[Message], expected: Action, guidance: Guidance) -> str:
    # Under `grammar` the decoding grammar and the planned values say what parameter notes would.
    signatures = tool_signatures(tools, notes=guidance != "grammar")
    return render("looptool.agents", "assistant", tools=signatures, history=transcript(history),
                  guidance=guidance_text(expected, guidance))  # fmt: skip


def to_label(answer: dict[str, Any], tools: Sequence[ToolSpec]) -> Label:
    """The answer as a label, refused (ModelOutputError) when a call is not valid for its tool."""
    if "text" in answer:
        text = " ".join(answer["text"].split())
        if len(text) < 2:
            raise ModelOutputError("assistant: the text is empty")
        return Label(text=text)
    by_name = {t.name: t for t in tools}
    calls = [ToolCall(name=c["name"], arguments=c["arguments"]) for c in answer["calls"]]
    for call in calls:
        if call.name not in by_name:
            raise ModelOutputError(f"assistant: called unknown function {call.name!r}")
        errors = argument_errors(by_name[call.name], call)
        if errors:
            raise ModelOutputError(f"assistant: invalid arguments for {call.name}: {errors[0].kind} at {errors[0].path or '<root>'}")
    return Label(calls=calls)


async def assistant_turn(
    endpoint: Endpoint,
    tools: Sequence[ToolSpec],
    history: Sequence[Message],
    expected: Action,
    *,
    guidance: Guidance,
    max_attempts: int,
    temperature: float,
) -> AgentResult[Label]:
    return await ask_json(
        "assistant", PROMPT_REF, endpoint, assistant_prompt(tools, history, expected, guidance),
        assistant_schema(tools, expected, guidance), lambda answer: to_label(answer, tools),
        max_attempts=max_attempts, temperature=temperature, max_tokens=MAX_TOKENS,
    )  # fmt: skip
