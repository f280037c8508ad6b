"""The user agent: speaks the next user message, following the plan turn in a persona.

Output schema: {"message": str}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from looptool.agents.base import AgentResult, ask_json, transcript
from looptool.prompts import render
from looptool.schema import Message
from looptool.seed.scenarios import Plan, PlanTurn
from looptool.serving.client import Endpoint, ModelOutputError

PROMPT_REF = "agents/user.md"
SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string", "minLength": 2, "maxLength": 400}},
    "required": ["message"],
    "additionalProperties": False,
}


def _details(mention: list[dict[str, Any]]) -> str:
    parts = [", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items()) for values in mention]
    parts = [p for p in parts if p]
    if not parts:
        return "(none)"
    return parts[0] if len(parts) == 1 else "; ".join(f"({i}) {p}" for i, p in enumerate(parts, start=1))


def instruction(plan: Plan, turn: PlanTurn) -> str:
    if turn.kind == "task":
        name = "user_task_withhold" if turn.withhold else "user_task"
        return render("looptool.agents", name, goal=plan.goal, details=_details(turn.mention),
                      withheld=" or ".join(turn.withhold))  # fmt: skip
    if turn.kind == "follow_up":
        return render("looptool.agents", "user_follow_up", details=_details(turn.mention))
    if turn.kind == "off_topic":
        return render("looptool.agents", "user_off_topic", goal=plan.goal)
    return render("looptool.agents", "user_chit_chat")


def user_prompt(plan: Plan, turn: PlanTurn, history: Sequence[Message]) -> str:
    return render("looptool.agents", "user", persona=plan.persona, instruction=instruction(plan, turn),
                  history=transcript(history))  # fmt: skip


async def user_turn(
    endpoint: Endpoint, plan: Plan, turn: PlanTurn, history: Sequence[Message], *, max_attempts: int, temperature: float
) -> AgentResult[Message]:
    def convert(answer: dict[str, Any]) -> Message:
        text = " ".join(answer["message"].split())
        if len(text) < 2:
            raise ModelOutputError("user: the message is empty")
        return Message(role="user", content=text, agent="user")

    return await ask_json(
        "user", PROMPT_REF, endpoint, user_prompt(plan, turn, history), SCHEMA, convert,
        max_attempts=max_attempts, temperature=temperature, max_tokens=160,
    )  # fmt: skip
