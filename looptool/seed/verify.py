"""Verification of a finished dialogue, before it may yield samples.

A dialogue passes when every call parses back from the policy's call format, names a tool the
dialogue offers, and has arguments valid for its schema; every tool result is JSON; and the
scenario of its plan actually happened (e.g. an irrelevant request got no call); and every reply
without a call is language (`language_problem`), not a code-like string a small model may emit.
Each failure is a short reason; reasons are stable strings so that rejections can be counted by
kind (a reply that is not language says which turn and why after `NOT_LANGUAGE`).
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from looptool.calls import calls_match, format_calls, parse_calls
from looptool.policy.prompt import CALL_STYLE
from looptool.schema import Action, Message, Plan, ToolSpec
from looptool.tools_sim.validate import argument_errors


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


NOT_LANGUAGE = "a reply without a call is not language"  # how the reason of such a reply starts
LONGEST_WORD = 30  # letters of one cased word: longer runs are not words (dictionary words stay under it)


def _caseless_letter(ch: str) -> bool:
    return ch.isalpha() and ch.lower() == ch.upper()


def _code_like(token: str) -> bool:
    """A token shaped like a code, not a word: letters mixed with digits ("o3S7JQW", "4pm"), more
    than one change from lower to upper case inside it ("zZJLEzbNqZJ"; "iPhone" has one), or a
    run of cased letters longer than LONGEST_WORD (scripts without case need no spaces: their runs
    are sentences)."""
    if any(ch.isalpha() for ch in token) and any(ch.isdigit() for ch in token):
        return True
    flips = sum(1 for a, b in zip(token, token[1:]) if a.islower() and b.isupper())
    runs = re.findall(r"[^\W\d_]+", token)
    return flips > 1 or any(len(run) > LONGEST_WORD and not _caseless_letter(run[0]) for run in runs)


def _strip_marks(token: str) -> str:
    """The token without punctuation and symbols at its ends ("city?" -> "city", "$20" -> "20")."""
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(token[end - 1])[0] in "PS":
        end -= 1
    return token[start:end]


def _tokens(text: str) -> list[str]:
    """The text split at spaces, punctuation and symbols at the ends of each piece removed. Scripts
    without case (Chinese, Japanese, Thai, ...) put no spaces between words, so each run of their
    letters is a token of its own, and so is what lies between those runs ("名为DevelopmentEnv的")."""
    out = []
    for chunk in text.split():
        for _, group in itertools.groupby(chunk, key=_caseless_letter):
            token = _strip_marks("".join(group))
            if token:
                out.append(token)
    return out


def language_problem(text: str | None) -> str | None:
    """Why a reply without a call is not language; None when it is.

    The rule: a reply is language when it has letters (in any script) and at most half of its
    tokens (`_tokens`) are code-like (`_code_like`: letters mixed with digits, random case, or a
    run of letters too long for a word). So "Sure.", "Which city?", "Quelle ville ?" and "哪个城市？"
    are kept, as is "Your booking is f0-o3S7JQW." (one code among words); "f0-o3S7JQW-zZJL8EzbNqZJ-…",
    an empty reply and one of punctuation or digits only are not.
    """
    text = text or ""
    if not text.strip():
        return "the reply is empty"
    if not any(ch.isalpha() for ch in text):
        return "the reply has no letters"
    tokens = _tokens(text)
    codes = [t for t in tokens if _code_like(t)]
    if 2 * len(codes) > len(tokens):
        example = codes[0] if len(codes[0]) <= 40 else codes[0][:39] + "…"
        return f"{len(codes)} of its {len(tokens)} tokens are code-like, not words (e.g. {example!r})"
    return None


def not_language_reason(idx: int, text: str | None) -> str | None:
    """The drop reason of a dialogue whose reply at message `idx` is not language (None when it is)."""
    why = language_problem(text)
    return None if why is None else f"{NOT_LANGUAGE} (m{idx}): {why.replace('|', '/')}"


def verify(plan: Plan, tools: Sequence[ToolSpec], rows: Sequence[dict[str, Any]]) -> list[str]:
    """Why the dialogue is not usable; empty when it is verified."""
    by_name = {t.name: t for t in tools}
    turns = assistant_turns(plan, rows)
    reasons: list[str] = []
    for t in turns:
        calls = t.message.tool_calls
        if not calls:
            # Every reply, not only the ones that become labels: a later sample's context holds it too.
            junk = None if t.masked else not_language_reason(t.idx, t.message.content)
            if junk is not None:
                reasons.append(junk)
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
