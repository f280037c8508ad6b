"""The judge's and the expander's model calls about one sample, grouped by what they were made for
(its verdict of a round, an expansion attempt from it): each call's prompt, model, latency and
tokens, whether it was accepted, its raw output beside what was parsed from it, and why it was
refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.widgets import Static

from looptool.display import short
from looptool.tui.data import CallGroup, usage_text


def _call(c: dict[str, Any]) -> list[RenderableType]:
    ok = c["status"] == "ok"
    line = Text.assemble(("✓ " if ok else "✗ refused ", "green" if ok else "bold red"))
    line.append(f"{c['agent']} {c['call_key']}", style="" if ok else "bold")
    prompt = f"prompt {c['prompt_ref']}" + (f" ({len(c['prompt'])} chars)" if c.get("prompt") else "")
    usage = usage_text(c.get("model"), c.get("latency_ms"), c.get("prompt_tokens"), c.get("completion_tokens"))
    line.append(f"  {prompt}" + (f" · {usage}" if usage else ""), style="dim")
    out: list[RenderableType] = [Padding(line, (0, 0, 0, 4))]
    if c.get("error"):
        out.append(Padding(Text(f"why:    {short(c['error'], 300)}", style="red"), (0, 0, 0, 7)))
    raw = short(c.get("raw"), 300) or "(none)"
    out.append(Padding(Text(f"raw:    {raw}", style="dim" if ok else ""), (0, 0, 0, 7)))
    if c.get("parsed") is not None:
        parsed = short(json.dumps(c["parsed"], ensure_ascii=False), 300)
        out.append(Padding(Text(f"parsed: {parsed}", style="dim"), (0, 0, 0, 7)))
    return out


def render_call_groups(groups: Sequence[CallGroup]) -> RenderableType:
    if not groups:
        return Text("judge and expander calls: none recorded", style="dim")
    parts: list[RenderableType] = [Text("judge and expander calls", style="bold underline")]
    for g in groups:
        parts.append(Padding(Text(g.title, style="bold"), (0, 0, 0, 2)))
        for c in g.calls:
            parts += _call(c)
    return Group(*parts)


class AgentCallList(Static):
    """A sample's judge and expander calls, by verdict and expansion attempt."""

    groups: tuple[CallGroup, ...] = ()  # what is shown

    def show(self, groups: Sequence[CallGroup]) -> None:
        self.groups = tuple(groups)
        self.update(render_call_groups(self.groups))
