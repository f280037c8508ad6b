"""The planner agent: fills a scenario skeleton with the user's goal and the argument values.

Output schema (built per dialogue): {"goal": str, "call_1": <arguments of the first planned
call>, "call_2": ...}, each call's arguments constrained by its tool's parameter schema.
"""

from __future__ import annotations

from typing import Any

from looptool.agents.base import AgentResult, arguments_schema, ask_json, tool_signatures
from looptool.config import SCENARIO_DESCRIPTIONS
from looptool.prompts import render
from looptool.schema import Plan, ToolSpec, complete_plan
from looptool.serving.client import Endpoint, ModelOutputError

PROMPT_REF = "agents/planner.md"
GOAL_SCHEMA = {"type": "string", "minLength": 8, "maxLength": 200}


def planner_schema(skeleton: Plan, specs: dict[str, ToolSpec]) -> dict[str, Any]:
    properties: dict[str, Any] = {"goal": GOAL_SCHEMA}
    for i, call in enumerate(skeleton.calls(), start=1):
        properties[f"call_{i}"] = arguments_schema(specs[call.tool])
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def planner_prompt(skeleton: Plan, specs: dict[str, ToolSpec], *, notes: bool = True) -> str:
    calls = skeleton.calls()
    if calls:
        listing = "\n".join(f"call_{i}: {c.tool}" for i, c in enumerate(calls, start=1))
        task = render("looptool.agents", "planner_task", calls=listing)
    else:
        task = render("looptool.agents", "planner_off_topic")
    return render(
        "looptool.agents",
        "planner",
        scenario=SCENARIO_DESCRIPTIONS[skeleton.scenario],
        tools=tool_signatures([specs[name] for name in skeleton.tools], notes=notes),
        task=task,
    )


async def plan_dialogue(
    endpoint: Endpoint, skeleton: Plan, specs: dict[str, ToolSpec], *, max_attempts: int, temperature: float
) -> AgentResult[Plan]:
    """The complete plan: the skeleton with a goal and every planned call's arguments."""
    n_calls = len(skeleton.calls())

    def convert(answer: dict[str, Any]) -> Plan:
        goal = " ".join(str(answer["goal"]).split())
        if len(goal) < 8:
            raise ModelOutputError("planner: the goal is empty")
        return complete_plan(skeleton, goal, [answer[f"call_{i}"] for i in range(1, n_calls + 1)])

    return await ask_json(
        "planner", PROMPT_REF, endpoint, planner_prompt(skeleton, specs), planner_schema(skeleton, specs), convert,
        max_attempts=max_attempts, temperature=temperature, max_tokens=320 + 240 * n_calls,
    )  # fmt: skip
