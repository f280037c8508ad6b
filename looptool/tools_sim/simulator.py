"""The tool simulator: the backend of the Tool agent.

Given a spec and a call it returns what the tool would: a plausible JSON result written by the
generator under the spec's output schema (structured output, so it always fits), or a
structured error when the call is invalid for the spec. It never runs code, opens files or
touches the network; the result is text from a model, checked against a schema.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from looptool.prompts import render
from looptool.schema import ToolCall, ToolSpec
from looptool.serving.client import Completion, Endpoint, ModelOutputError, acomplete_json, parse_json_answer
from looptool.serving.grammar import decoding_schema
from looptool.tools_sim.validate import ArgumentError, argument_errors

# A tool without an output schema still answers with a JSON object.
GENERIC_RESULT = {"type": "object"}


class ToolResult(BaseModel):
    """What the tool returned: `content` on success, `error` (with details) when it refused."""

    ok: bool
    content: Any = None
    error: dict[str, Any] | None = None

    def to_message_content(self) -> str:
        """The text a `tool` message carries."""
        return json.dumps(self.content if self.ok else {"error": self.error}, ensure_ascii=False)


def invalid_call_result(errors: list[ArgumentError]) -> ToolResult:
    kind = "unknown_tool" if errors[0].kind == "unknown_tool" else "invalid_arguments"
    return ToolResult(ok=False, error={"type": kind, "details": [e.model_dump() for e in errors]})


async def simulate_call(
    endpoint: Endpoint, spec: ToolSpec, call: ToolCall, *, max_tokens: int = 500, temperature: float = 0.7
) -> tuple[ToolResult, Completion | None]:
    """Validate the call against the spec; if valid, have the generator write the result.

    Returns the result and the model's completion (None when the call was refused unseen).
    """
    errors = argument_errors(spec, call)
    if errors:
        return invalid_call_result(errors), None
    prompt = render(
        "looptool.tools_sim",
        "simulate_tool",
        name=spec.name,
        description=spec.description or "(no description)",
        arguments=json.dumps(call.arguments, ensure_ascii=False),
    )
    schema = decoding_schema(spec.returns or GENERIC_RESULT)
    name = f"{spec.name}_result"
    completion = await acomplete_json(
        endpoint, [("user", prompt)], schema, name=name, temperature=temperature, max_tokens=max_tokens
    )
    try:
        content = parse_json_answer(completion.content, schema, name)
    except ModelOutputError as exc:
        # The call was fine; the simulation failed. Callers retry or drop the turn.
        return ToolResult(ok=False, error={"type": "simulation_failed", "details": str(exc)}), completion
    return ToolResult(ok=True, content=content), completion
