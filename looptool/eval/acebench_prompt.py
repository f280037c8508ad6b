"""How an ACEBench entry is put to the policy. Two prompts, chosen by `[eval] acebench_prompt`:

* "acebench" (default): ACEBench's own English prompt, as its `model_inference/common_inference.py`
  builds it at commit 56dd66cf: a system message (the Normal, Preference or Special text of
  `prompt_en.py`, in `prompts/acebench_*.md`, with the entry's time or profile and its functions
  printed as a Python list) and a user message "Conversation history 1..t:" followed by the
  entry's transcript. Answers are `[ApiName(key='value', ...)]`.
* "tool_call": the policy's own `<tool_call>` prompt (the one it is trained on, as BFCL's
  "tool_call_tags" format builds it; the LoopTool paper's setting) with the entry's functions as
  tools, the transcript as the user message, and the entry's time or profile as a system note.
  For the Special categories the note also carries ACEBench's instructions for replies that
  point out missing or wrong values or an impossible request, since those phrases are what the
  Special checks look for.
"""

from __future__ import annotations

from typing import Any

from looptool.eval.acebench_data import Entry
from looptool.eval.acebench_decode import PromptFormat
from looptool.policy.prompt import PromptRenderer, fallback_chat
from looptool.prompts import load_prompt
from looptool.schema import Message, ToolSpec


def _fill(name: str, **values: str) -> str:
    # Not `prompts.render`, which strips: upstream keeps the transcript's trailing newline.
    return load_prompt("looptool.eval", name).substitute(values).removesuffix("\n")


def acebench_messages(entry: Entry) -> list[dict[str, Any]]:
    """ACEBench's own system and user messages for the entry."""
    functions = str(entry.functions)  # upstream formats the list of dicts with str()
    if entry.is_special:
        system = _fill("acebench_special", time=entry.time, function=functions)
    elif entry.category == "normal_preference":
        system = _fill("acebench_preference", profile=entry.profile, function=functions)
    else:
        system = _fill("acebench_normal", time=entry.time, function=functions)
    return [{"role": "system", "content": system},
            {"role": "user", "content": _fill("acebench_user", question=entry.question)}]


def prompt_messages(entry: Entry, fmt: PromptFormat = "acebench") -> list[dict[str, Any]]:
    """The chat messages that ask the policy to answer `entry`."""
    if fmt == "acebench":
        return acebench_messages(entry)
    history, note = _tool_call_history(entry)
    return fallback_chat(history, entry_tools(entry), system_note=note)


def prompt_text(entry: Entry, renderer: PromptRenderer) -> str:
    """The "tool_call" prompt rendered to text by the policy's own renderer, as training renders."""
    history, note = _tool_call_history(entry)
    return renderer.render(history, entry_tools(entry), system_note=note)


def entry_tools(entry: Entry) -> list[ToolSpec]:
    # Built without validation: the benchmark's schemas are used as published (a few distractor
    # functions name their schema "arguments" instead of "parameters").
    return [ToolSpec.model_construct(name=f["name"], description=f.get("description") or "",
                                     parameters=f.get("parameters") or f.get("arguments") or {}, returns=None)
            for f in entry.functions]


def _tool_call_history(entry: Entry) -> tuple[list[Message], str | None]:
    notes = [entry.time, f"Character profile:\n{entry.profile}" if entry.profile else ""]
    if entry.is_special:
        notes.append(_fill("acebench_tool_call_special"))
    return [Message(role="user", content=entry.question)], "\n\n".join(n for n in notes if n) or None
