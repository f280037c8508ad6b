"""Plain-text views of seed dialogues for the command line: a list, and one dialogue as a
readable transcript with its plan, per-turn agent/model/latency, and (optionally) every agent call."""

from __future__ import annotations

import json
from typing import Any

from looptool.calls import format_calls
from looptool.schema import Plan
from looptool.store import Store

WIDTH = 100


def _short(text: str | None, width: int = WIDTH) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def dialogue_list(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'id':<20} {'status':<8} {'scenario':<17} {'split':<7} {'msgs':>4} {'samples':>7}  error"]
    for r in rows:
        lines.append(
            f"{r['id']:<20} {r['status']:<8} {r['scenario'] or '-':<17} {r['split'] or '-':<7} "
            f"{r['n_messages']:>4} {r['n_samples']:>7}  {_short(r['error'], 60) if r['error'] else ''}"
        )
    return lines


def _usage(row: dict[str, Any]) -> str:
    if row.get("latency_ms") is None:
        return ""
    tokens = f", {row['prompt_tokens']}+{row['completion_tokens']} tok" if row.get("prompt_tokens") is not None else ""
    return f"  ({row['model']}, {row['latency_ms']:.0f} ms{tokens})"


def render_dialogue(store: Store, dialogue_id: str, *, trace: bool = False) -> list[str]:
    d = store.get_dialogue(dialogue_id, with_messages=False)
    lines = [f"dialogue {d.id}  status={d.status}" + (f"  error: {d.error}" if d.error else "")]
    if d.plan.get("turns") is not None:
        plan = Plan.model_validate(d.plan)
        lines += [
            f"scenario: {plan.scenario}  split: {plan.split}",
            f"persona:  {plan.persona}",
            f"goal:     {plan.goal or '(not planned yet)'}",
            f"tools:    {', '.join(plan.tools)}",
            "plan:",
        ]
        for i, turn in enumerate(plan.turns, start=1):
            actions = ", ".join(
                a.kind + ("(" + ", ".join(f"{c.tool}{json.dumps(c.arguments, ensure_ascii=False)}" for c in a.calls) + ")" if a.calls else "")
                + (f"[{', '.join(a.missing)}]" if a.missing else "")
                for a in turn.actions
            )  # fmt: skip
            withhold = f" withholding {', '.join(turn.withhold)}" if turn.withhold else ""
            lines.append(f"  {i}. user {turn.kind}{withhold} -> {_short(actions, WIDTH - 20)}")
    lines.append("transcript:")
    for row in store.message_rows(dialogue_id):
        m = row["message"]
        if m.role == "assistant" and m.tool_calls:
            body = format_calls(m.tool_calls, "python") if _pythonable(m.tool_calls) else format_calls(m.tool_calls, "json")
        else:
            body = m.content or ""
        masked = " [masked]" if row["masked"] else ""
        who = m.role.upper() if m.role != "tool" else f"TOOL {m.name}"
        lines.append(f"  [{row['idx']}] {who}{masked}{_usage(row)}")
        lines.append(f"      {_short(body, WIDTH * 3)}")
    samples = list(store.iter_samples(dialogue_id=dialogue_id))
    lines.append(f"samples: {len(samples)}")
    for s in samples:
        label = "no call: " + _short(s.label.text, 60) if s.label.is_no_call else ", ".join(c.name for c in s.label.calls)
        lines.append(f"  {s.id}  {s.split:<7} context {len(s.messages)} messages -> {label}")
    traces = store.traces(dialogue_id)
    lines.append(f"agent calls: {len(traces)}" + ("" if trace else " (--trace shows each)"))
    if trace:
        for t in traces:
            tokens = f" {t['prompt_tokens']}+{t['completion_tokens']} tok" if t["prompt_tokens"] is not None else ""
            latency = f" {t['latency_ms']:.0f} ms" if t["latency_ms"] is not None else ""
            lines.append(f"  {t['call_key']:<24} {t['agent']:<9} {t['status']:<5}{latency}{tokens}  prompt {t['prompt_ref']}")
            if t["raw"] is not None:
                lines.append(f"      raw: {_short(t['raw'], WIDTH * 2)}")
            if t["error"]:
                lines.append(f"      error: {_short(t['error'], WIDTH * 2)}")
    return lines


def _pythonable(calls) -> bool:
    try:
        format_calls(calls, "python")
    except ValueError:
        return False
    return True
