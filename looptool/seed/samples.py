"""Samples from a verified dialogue: one per assistant call turn and per correct no-call turn.

A sample's context is the policy's system prompt (tools + call format) and the conversation up
to the turn, trimmed to the token budget by dropping the oldest user turns; its label is the
assistant's calls or text. Turns that are masked (no self-consistent answer), whose tool results
are errors, or that do not fit the budget even trimmed are skipped, and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from looptool.policy.prompt import chat_messages, system_message, trim_history
from looptool.schema import Label, Message, Plan, Sample, ToolSpec
from looptool.seed.verify import assistant_turns, result_is_error


def turn_samples(
    dialogue_id: str,
    plan: Plan,
    tools: Sequence[ToolSpec],
    rows: Sequence[dict[str, Any]],
    *,
    budget: int,
    count_tokens: Callable[[list[dict[str, Any]]], int],
    final_replies: bool = True,
) -> tuple[dict[int, Sample], Counter]:
    """The samples of a verified dialogue by the index of the assistant message each labels (the
    judge's check needs to know which turn made a sample), and the turns skipped by reason."""
    skipped: Counter = Counter()
    samples: dict[int, Sample] = {}
    messages: list[Message] = [r["message"] for r in rows]
    position = {r["idx"]: i for i, r in enumerate(rows)}
    system = system_message(tools)
    for t in assistant_turns(plan, rows):
        m = t.message
        if t.masked:
            skipped["masked (no self-consistent answer)"] += 1
            continue
        if m.tool_calls:
            if any(result_is_error(r) for r in t.results):
                skipped["a tool result is an error"] += 1
                continue
            label = Label(calls=m.tool_calls)
        else:
            if t.expected.kind == "call":
                skipped["text where a call was planned"] += 1
                continue
            if t.after_tool and not final_replies:
                continue
            label = Label(text=m.content or "")
        context = trim_history([system, *messages[: position[t.idx]]], budget, lambda ms: count_tokens(chat_messages(ms)))
        if context is None:
            skipped["context over the token budget"] += 1
            continue
        samples[t.idx] = Sample(dialogue_id=dialogue_id, origin="seed", round_added=0, messages=context,
                                tools=list(tools), label=label, split=plan.split, scenario=plan.scenario)  # fmt: skip
    return samples, skipped
