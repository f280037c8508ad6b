"""A seed dialogue as a transcript: its plan, then each message with the agent, model, latency and
tokens behind it, and under it every agent call made for it -- raw output beside what was parsed
from it, and the calls that were rejected and why."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from looptool.display import calls_text, short
from looptool.schema import Dialogue
from looptool.tui.data import usage_text

ROLE_STYLES = {"user": "bold cyan", "assistant": "bold green", "tool": "bold magenta", "system": "bold"}


def _indented(text: Text, spaces: int) -> Padding:
    """Text indented as a block, so its wrapped lines stay under its first one."""
    return Padding(text, (0, 0, 0, spaces))


def _plan(d: Dialogue) -> list[RenderableType]:
    plan = d.plan
    head = Text.assemble((f"dialogue {d.id}", "bold"))
    head.append(f"  status {d.status}", style="red" if d.status == "dropped" else "green")
    if d.error:
        head.append(f"  error: {short(d.error, 200)}", style="red")
    out: list[RenderableType] = [head]
    facts = [f"{k} {plan[k]}" for k in ("scenario", "split") if plan.get(k)]
    if facts:
        out.append(_indented(Text(" · ".join(facts)), 2))
    for key in ("persona", "goal"):
        if plan.get(key):
            out.append(_indented(Text(f"{key}: {short(str(plan[key]), 300)}"), 2))
    if plan.get("tools"):
        out.append(_indented(Text("tools: " + ", ".join(map(str, plan["tools"]))), 2))
    for i, turn in enumerate(plan.get("turns") or [], start=1):
        actions = []
        for a in turn.get("actions", []):
            calls = ", ".join(f"{c.get('tool')}{json.dumps(c.get('arguments', {}), ensure_ascii=False)}"
                              for c in a.get("calls", []))
            actions.append(a.get("kind", "?") + (f"({calls})" if calls else ""))
        out.append(_indented(Text(f"plan {i}. user {turn.get('kind', '?')} -> {short(', '.join(actions), 160)}",
                                  style="dim"), 2))
    return out


def _trace(t: dict[str, Any]) -> list[RenderableType]:
    ok = t["status"] == "ok"
    line = Text.assemble(("✓ " if ok else "✗ rejected ", "green" if ok else "bold red"))
    line.append(f"{t['agent']} call {t['call_key']}", style="bold" if not ok else "")
    usage = usage_text(t.get("model"), t.get("latency_ms"), t.get("prompt_tokens"), t.get("completion_tokens"))
    if usage:
        line.append(f"  ({usage})", style="dim")
    out: list[RenderableType] = [_indented(line, 4)]
    if t.get("error"):
        out.append(_indented(Text(f"why: {short(t['error'], 400)}", style="red"), 7))
    out.append(_indented(Text(f"raw:    {short(t.get('raw'), 400) or '(none)'}", style="dim" if ok else ""), 7))
    parsed = t.get("parsed")
    if parsed is not None:
        out.append(_indented(Text(f"parsed: {short(json.dumps(parsed, ensure_ascii=False), 400)}", style="dim"), 7))
    return out


def render_transcript(d: Dialogue, message_rows: Sequence[dict[str, Any]],
                      traces: Sequence[dict[str, Any]]) -> Group:
    """The whole transcript as one Rich renderable."""
    by_message: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for t in traces:
        by_message[t.get("msg_idx")].append(t)
    parts: list[RenderableType] = _plan(d)
    if by_message.get(None):
        parts.append(Text("planner and other calls", style="bold underline"))
        for t in by_message[None]:
            parts += _trace(t)
    for row in message_rows:
        m = row["message"]
        head = Text.assemble((f"[{row['idx']}] ", "dim"))
        head.append(m.role.upper() + (f" {m.name}" if m.role == "tool" and m.name else ""),
                    style=ROLE_STYLES.get(m.role, "bold"))
        if m.agent:
            head.append(f"  agent {m.agent}")
        usage = usage_text(row.get("model"), row.get("latency_ms"), row.get("prompt_tokens"), row.get("completion_tokens"))
        if usage:
            head.append(f"  {usage}", style="dim")
        if row.get("masked"):
            head.append("  [masked: its samples disagreed, no training sample]", style="yellow")
        parts.append(Text(""))
        parts.append(head)
        if m.content:
            parts.append(_indented(Text(short(m.content, 1200)), 4))
        if m.tool_calls:
            parts.append(_indented(Text("calls: " + short(calls_text(m.tool_calls), 1200), style="green"), 4))
        for t in by_message.get(row["idx"], []):
            parts += _trace(t)
    if not message_rows:
        parts.append(Text("(no messages)", style="dim"))
    return Group(*parts)


class Transcript(VerticalScroll):
    """A scrollable transcript of one dialogue."""

    def compose(self):
        yield Static("choose a dialogue", id="transcript-body")

    def show(self, d: Dialogue, message_rows: Sequence[dict[str, Any]], traces: Sequence[dict[str, Any]]) -> None:
        self.query_one("#transcript-body", Static).update(render_transcript(d, message_rows, traces))
        self.scroll_home(animate=False)

    def show_text(self, text: str) -> None:
        self.query_one("#transcript-body", Static).update(text)
