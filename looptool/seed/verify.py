"""Verification of a finished dialogue, before it may yield samples.

A dialogue passes when every call parses back from the policy's call format, names a tool the
dialogue offers, and has arguments valid for its schema; every tool result is JSON; and the
scenario of its plan actually happened (e.g. an irrelevant request got no call). Each failure is a
short reason; reasons are stable strings so that rejections can be counted by kind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from looptool.calls import calls_match, format_calls, parse_calls
from looptool.schema import Message, ToolSpec
from looptool.seed.scenarios import Action, Plan
from looptool.tools_sim.validate import argument_errors
from looptool.training.templates import CALL_STYLE


@dataclass
class AssistantTurn:
    """An assistant message in its place in the plan."""

    idx: int
    message: Message
    masked: bool
    turn: int  # index of the plan turn (user message) it answers
    action: int  # its position among the assistant messages answering that user message
    expected: Action
    after_tool: bool  # it follows tool results (not directly a user message)
    results: list[Message] = field(default_factory=list)  # the tool messages answering its calls


def assistant_turns(plan: Plan, rows: Sequence[dict[str, Any]]) -> list[AssistantTurn]:
    """The assistant messages of a dialogue (store.message_rows) with their plan positions."""
    out: list[AssistantTurn] = []
    turn, action, previous = -1, 0, None
    for row in rows:
        m: Message = row["message"]
        if m.role == "user":
            turn, action = turn + 1, 0
        elif m.role == "assistant":
            out.append(AssistantTurn(row["idx"], m, row["masked"], turn, action, plan.expected(turn, action), previous == "tool"))
            action += 1
        elif m.role == "tool" and out:
            out[-1].results.append(m)
        previous = m.role
    return out


def result_is_error(message: Message) -> bool:
    try:
        value = json.loads(message.content or "")
    except json.JSONDecodeError:
        return True
    return isinstance(value, dict) and set(value) == {"error"}


def verify(plan: Plan, tools: Sequence[ToolSpec], rows: Sequence[dict[str, Any]]) -> list[str]:
    """Why the dialogue is not usable; empty when it is verified."""
    by_name = {t.name: t for t in tools}
    turns = assistant_turns(plan, rows)
    reasons: list[str] = []
    for t in turns:
        calls = t.message.tool_calls
        if not calls:
            continue
        parsed = parse_calls(format_calls(calls, CALL_STYLE))
        if parsed.status != "calls" or not calls_match(parsed.calls, calls):
            reasons.append("call does not survive the call format")
        for call in calls:
            if call.name not in by_name:
                reasons.append("call to a tool the dialogue does not offer")
            elif argument_errors(by_name[call.name], call):
                reasons.append("call arguments do not fit the schema")
        if len(t.results) != len(calls):
            reasons.append("a call got no tool result")
    for row in rows:
        m: Message = row["message"]
        if m.role == "tool":
            try:
                json.loads(m.content or "")
            except json.JSONDecodeError:
                reasons.append("tool result is not JSON")
    reasons += scenario_problems(plan, turns)
    if turns and all(t.masked for t in turns):
        reasons.append("every assistant turn was masked (no self-consistent answer)")
    return list(dict.fromkeys(reasons))


def scenario_problems(plan: Plan, turns: Sequence[AssistantTurn]) -> list[str]:
    """Did the plan's scenario happen? One reason per part of it that did not."""
    reasons = []
    call_turns = [t for t in turns if t.message.tool_calls]
    task_turn = next((i for i, pt in enumerate(plan.turns) if pt.kind in ("task", "off_topic")), 0)
    first_answer = next((t for t in turns if t.turn == task_turn), None)
    scenario = plan.scenario
    if scenario == "irrelevant":
        if call_turns:
            reasons.append("irrelevant: the assistant called a tool")
    elif not call_turns:
        reasons.append(f"{scenario}: no call was made")
    elif scenario in ("single", "multiple") and len(call_turns[0].message.tool_calls) != 1:
        reasons.append(f"{scenario}: the first call turn has {len(call_turns[0].message.tool_calls)} calls, not 1")
    elif scenario == "parallel" and not any(len(t.message.tool_calls) >= 2 for t in call_turns):
        reasons.append("parallel: no turn made two or more calls")
    elif scenario == "sequential" and not any(t.message.tool_calls and t.after_tool for t in call_turns):
        reasons.append("sequential: no call followed a tool result")
    elif scenario == "missing_argument":
        if first_answer is None or first_answer.message.tool_calls:
            reasons.append("missing_argument: the assistant did not ask for the missing value")
        else:
            withheld = plan.turns[task_turn].withhold
            later = [c for t in call_turns if t.turn > task_turn for c in t.message.tool_calls]
            if not later or any(w not in later[0].arguments for w in withheld):
                reasons.append("missing_argument: no later call used the value the user gave")
    for i, pt in enumerate(plan.turns):
        answers = [t for t in turns if t.turn == i]
        if pt.kind == "chit_chat" and (not answers or answers[0].message.tool_calls):
            reasons.append("chit-chat: answered with a call, or not at all")
    if len({t.turn for t in turns}) < len(plan.turns):
        reasons.append("the plan was not finished (turn budget)")
    return reasons
