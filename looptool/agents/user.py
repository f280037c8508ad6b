"""The user agent: speaks the next user message, following the plan turn in a persona.

Output schema: {"message": str}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from looptool.agents.base import AgentResult, ask_json, transcript
from looptool.prompts import render
from looptool.schema import Message, Plan, PlanTurn
from looptool.serving.client import Endpoint, ModelOutputError

PROMPT_REF = "agents/user.md"
MAX_FORCED_CHARS = 60  # longer values are asked for in the prompt but not forced by the grammar
MAX_GAP = 60  # characters of free text before, between and after the forced values
MAX_TOKENS = 300  # symbols and digits can take a token per character
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}/")


def user_schema(turn: PlanTurn, force_mentions: bool) -> dict[str, Any]:
    """{"message": str}. With `force_mentions` the message must contain the turn's short scalar
    values verbatim, in plan order, with at most MAX_GAP characters of free text around each (a
    regex the decoding grammar enforces): a small model then cannot leave out the details the
    assistant has to find in it."""
    message: dict[str, Any] = {"type": "string", "minLength": 2, "maxLength": 300}
    values = [_literal(v) for values in turn.mention for v in values.values()] if force_mentions else []
    values = [v for v in values if v is not None]
    if values:
        gap = f"[^\\n]{{0,{MAX_GAP}}}"  # bounded, so a rambling model is soon made to write the value
        message = {"type": "string", "pattern": "^" + gap + gap.join(_escape(v) for v in values) + gap + "$"}
    return {"type": "object", "properties": {"message": message}, "required": ["message"], "additionalProperties": False}


def _literal(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_FORCED_CHARS and "\n" not in value:
        return value
    return None


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in text)


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
    endpoint: Endpoint,
    plan: Plan,
    turn: PlanTurn,
    history: Sequence[Message],
    *,
    max_attempts: int,
    temperature: float,
    force_mentions: bool = False,
) -> AgentResult[Message]:
    def convert(answer: dict[str, Any]) -> Message:
        text = " ".join(answer["message"].split())
        if len(text) < 2:
            raise ModelOutputError("user: the message is empty")
        return Message(role="user", content=text, agent="user")

    return await ask_json(
        "user", PROMPT_REF, endpoint, user_prompt(plan, turn, history), user_schema(turn, force_mentions), convert,
        max_attempts=max_attempts, temperature=temperature, max_tokens=MAX_TOKENS,
    )  # fmt: skip
