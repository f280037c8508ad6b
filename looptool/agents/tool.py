"""The tool agent: answers the assistant's calls with simulated results (see
tools_sim/simulator.py, whose prompt and output schema -- the tool's `returns` -- it uses).

An invalid call gets an error result without asking the model; a simulation that fails to fit the
output schema is tried again, up to `max_attempts` times.
"""

from __future__ import annotations

from collections.abc import Sequence

from looptool.agents.base import AgentResult, Attempt
from looptool.schema import ToolCall, ToolSpec
from looptool.serving.client import Endpoint
from looptool.tools_sim.simulator import ToolResult, invalid_call_result, simulate_call
from looptool.tools_sim.validate import ArgumentError

PROMPT_REF = "tools_sim/simulate_tool.md"


async def tool_result(
    endpoint: Endpoint, tools: Sequence[ToolSpec], call: ToolCall, *, max_attempts: int, temperature: float
) -> AgentResult[ToolResult]:
    result: AgentResult[ToolResult] = AgentResult("tool", PROMPT_REF)
    spec = next((t for t in tools if t.name == call.name), None)
    if spec is None:
        unknown = ArgumentError(kind="unknown_tool", path="", message=f"no function named {call.name!r}")
        result.value = invalid_call_result([unknown])
        result.attempts.append(Attempt(None, result.value.model_dump()))
        return result
    for _ in range(max_attempts):
        outcome, completion = await simulate_call(endpoint, spec, call, temperature=temperature)
        if outcome.ok or completion is None:  # a result, or a refusal of an invalid call
            result.attempts.append(Attempt(completion, outcome.model_dump()))
            result.value = outcome
            return result
        result.attempts.append(Attempt(completion, error=f"tool {call.name}: {outcome.error['details']}"))
    return result
