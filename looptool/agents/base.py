"""What every agent shares: one JSON-schema-constrained model call with bounded retries, the
record of each attempt (for the trace), and the transcript form of a conversation.

An agent turns its inputs into a prompt and a JSON Schema, calls `ask_json`, and converts the
validated answer into its own type. A conversion that finds the answer unusable raises
ModelOutputError, which counts as a failed attempt exactly like JSON that does not parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from looptool.schema import Message, ToolSpec
from looptool.serving.client import (Completion, Endpoint, ModelOutputError, RequestRejected, acomplete_json,
                                     parse_json_answer)
from looptool.serving.grammar import decoding_schema

T = TypeVar("T")

MAX_RESULT_CHARS = 400  # tool results are cut to this in transcripts: agents need the gist, not the bulk


@dataclass
class Attempt:
    """One model call of an agent: what came back, what it decoded to, and why it was refused."""

    completion: Completion | None
    parsed: Any = None
    error: str | None = None


@dataclass
class AgentResult(Generic[T]):
    """The outcome of an agent turn: its value (None when every attempt failed) and the attempts."""

    agent: str
    prompt_ref: str
    value: T | None = None
    attempts: list[Attempt] = field(default_factory=list)
    prompt: str = ""  # the text the model was given (the loop's traces keep it)

    @property
    def error(self) -> str | None:
        if self.value is not None or not self.attempts:
            return None
        return self.attempts[-1].error


async def ask_json(
    agent: str,
    prompt_ref: str,
    endpoint: Endpoint,
    prompt: str,
    schema: dict[str, Any],
    convert: Callable[[Any], T],
    *,
    max_attempts: int,
    temperature: float,
    max_tokens: int,
) -> AgentResult[T]:
    """Ask until an answer fits `schema` and `convert` accepts it, at most `max_attempts` times."""
    result: AgentResult[T] = AgentResult(agent, prompt_ref, prompt=prompt)
    for _ in range(max_attempts):
        try:
            completion = await acomplete_json(
                endpoint, [("user", prompt)], schema, name=agent, temperature=temperature, max_tokens=max_tokens
            )
        except RequestRejected as exc:
            # The server refused this request (e.g. prompt plus answer longer than its context): the
            # same request would be refused again, so the turn fails here, recorded, and the run goes on.
            result.attempts.append(Attempt(None, error=f"{agent}: {exc}"))
            return result
        if completion.truncated:
            result.attempts.append(Attempt(completion, error=f"{agent}: the answer hit max_tokens ({max_tokens})"))
            continue
        try:
            parsed = parse_json_answer(completion.content, schema, agent)
            value = convert(parsed)
        except ModelOutputError as exc:
            result.attempts.append(Attempt(completion, error=str(exc)))
            continue
        result.attempts.append(Attempt(completion, parsed))
        result.value = value
        return result
    return result


def trace_rows(result: AgentResult[Any]) -> list[dict[str, Any]]:
    """The attempts of an agent turn as rows for `Store.record_agent_calls`, one per model call."""
    rows = []
    for attempt in result.attempts:
        c = attempt.completion
        rows.append({"agent": result.agent, "prompt_ref": result.prompt_ref, "prompt": result.prompt,
                     "status": "ok" if attempt.error is None else "error", "raw": c.content if c else None,
                     "parsed": attempt.parsed, "error": attempt.error, "model": c.model if c else None,
                     "latency_ms": c.latency_ms if c else None, "prompt_tokens": c.prompt_tokens if c else None,
                     "completion_tokens": c.completion_tokens if c else None})
    return rows


def arguments_schema(spec: ToolSpec) -> dict[str, Any]:
    """The tool's parameter schema as a decoding grammar (see serving/grammar.py)."""
    return decoding_schema(spec.parameters)


def transcript(messages: Sequence[Message]) -> str:
    """A conversation as plain text for an agent's prompt (works with any chat template)."""
    lines = []
    for m in messages:
        if m.role == "user":
            lines.append(f"User: {m.content}")
        elif m.role == "assistant" and m.tool_calls:
            calls = "; ".join(f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in m.tool_calls)
            lines.append(f"Assistant calls: {calls}")
        elif m.role == "assistant":
            lines.append(f"Assistant: {m.content}")
        elif m.role == "tool":
            content = m.content or ""
            if len(content) > MAX_RESULT_CHARS:
                content = content[:MAX_RESULT_CHARS] + " ..."
            lines.append(f"Function {m.name} returned: {content}")
    return "\n".join(lines) if lines else "(nothing yet)"


def tool_signatures(tools: Sequence[ToolSpec], *, notes: bool = True) -> str:
    """Tools as short signatures for agent prompts, one per line:
    `name(city: string, days?: integer 1..7) - description; days: number of days`.

    Agents see tools in this form rather than as JSON Schema, with descriptions cut short,
    because prompt tokens are what a busy server spends its time on (prefill does not batch the
    way decoding does), and the decoding grammar enforces the details (types, enums, ranges,
    formats) anyway. `notes=False` leaves out the parameter descriptions too.
    """
    return "\n".join(_signature(t, notes) for t in tools)


def _signature(spec: ToolSpec, with_notes: bool) -> str:
    props = spec.parameters.get("properties", {})
    required = set(spec.parameters.get("required", []))
    params = ", ".join(f"{name}{'' if name in required else '?'}: {_type(schema)}" for name, schema in props.items())
    notes = "; ".join(f"{name}: {_cut(schema['description'], 60)}" for name, schema in props.items() if schema.get("description"))
    line = f"{spec.name}({params})"
    if spec.description:
        line += f" - {_cut(spec.description, 120)}"
    return f"{line}; {notes}" if notes and with_notes else line


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type", "any")
    kind = "|".join(kind) if isinstance(kind, list) else kind
    if kind == "array":
        return f"array<{_type(schema.get('items', {}))}>"
    if kind == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        inner = ", ".join(f"{k}{'' if k in required else '?'}: {_type(v)}" for k, v in schema["properties"].items())
        return "{" + inner + "}"
    extra = schema.get("format") or schema.get("pattern") or ""
    if "minimum" in schema or "maximum" in schema:
        extra = f"{schema.get('minimum', '')}..{schema.get('maximum', '')}"
    return f"{kind} {extra}".strip()
