"""How a BFCL entry is put to the policy: its functions and question as a chat prompt.

Two formats, chosen by `[eval] prompt_format`:

* "tool_call_tags" (default): the policy's own prompt from `policy/prompt.py` -- the same system
  prompt and `<tool_call>` format it is trained on -- with the functions converted the way BFCL
  converts them for native tool-calling models: `dict` -> object, `float` -> number (plus "This is
  a float type value." in the description), `tuple` -> array, `any` -> string. For the Java and
  JavaScript categories every parameter is shown as a string holding a Java/JavaScript literal,
  which the checker converts back, as BFCL does.
* "python": BFCL's own prompt for prompted (non tool-calling) models, answers as
  `[f(a=1), g(b="x")]`; the functions are listed as BFCL's JSON.

An entry's own system message (live categories) follows ours inside one system message, because
several chat templates accept a system message only at the start.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, Literal

from looptool.eval.bfcl_data import Entry, language_of
from looptool.policy.prompt import PromptRenderer, chat_messages, fallback_chat
from looptool.prompts import render
from looptool.schema import Message, ToolSpec

PromptFormat = Literal["tool_call_tags", "python"]

# BFCL's wording for the conversions above (its model handlers append these to descriptions).
FLOAT_HINT = " This is a float type value."
LANGUAGE_HINTS = {
    "java": (" Note that the provided function is in Java 8 SDK syntax.",
             " This parameter can be of any type of Java object in string representation."),
    "javascript": (" Note that the provided function is in JavaScript syntax.",
                   " This parameter can be of any type of JavaScript object in string representation."),
}
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string", "integer": "integer",
          "string": "string", "boolean": "boolean", "array": "array"}


def prompt_messages(entry: Entry, fmt: PromptFormat = "tool_call_tags") -> list[dict[str, Any]]:
    """The chat messages (role/content dicts) that ask the policy to answer `entry`, for a server
    that applies the chat template itself."""
    history, note = entry_history(entry)
    if fmt == "python":
        docs = [_language_doc(f, language_of(entry.category)) for f in entry.functions]
        system = render("looptool.eval", "bfcl_python", functions=json.dumps(docs, ensure_ascii=False))
        return chat_messages([Message(role="system", content="\n\n".join(filter(None, [system, note]))), *history])
    return fallback_chat(history, entry_tools(entry), system_note=note)


def prompt_text(entry: Entry, renderer: PromptRenderer) -> str:
    """The same prompt rendered to text by the policy's own renderer, exactly as training renders
    (tools through the template's native support where it has it)."""
    history, note = entry_history(entry)
    return renderer.render(history, entry_tools(entry), system_note=note)


def multi_turn_tools(docs: Sequence[dict[str, Any]]) -> list[ToolSpec]:
    """A multi-turn entry's function docs (BFCL's Python ones) as the tools the policy is shown."""
    return [_tool_spec(doc) for doc in docs]


def conversation_messages(history: Sequence[Message], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """A multi-turn conversation so far as chat messages, for a server that applies the chat
    template: the policy's system prompt with the tools offered now, then the history (assistant
    steps in the call format, call results as `tool` messages)."""
    return fallback_chat(history, tools)


def conversation_text(history: Sequence[Message], tools: Sequence[ToolSpec], renderer: PromptRenderer) -> str:
    """The same conversation rendered to text by the policy's own renderer, as training renders."""
    return renderer.render(history, tools)


def entry_tools(entry: Entry) -> list[ToolSpec]:
    language = language_of(entry.category)
    return [_tool_spec(_language_doc(f, language)) for f in entry.functions]


def entry_history(entry: Entry) -> tuple[list[Message], str | None]:
    """The entry's turn without its system messages, and their text (live entries have some)."""
    own = [m["content"] for m in entry.messages if m["role"] == "system" and m.get("content")]
    history = [Message(role=m["role"], content=m.get("content") or "") for m in entry.messages if m["role"] != "system"]
    return history, "\n\n".join(own) or None


def _language_doc(doc: dict[str, Any], language: str) -> dict[str, Any]:
    """Java/JavaScript docs: every parameter a string holding a literal of the language."""
    if language not in LANGUAGE_HINTS:
        return doc
    func_hint, param_hint = LANGUAGE_HINTS[language]
    doc = copy.deepcopy(doc)
    doc["description"] = (doc.get("description") or "") + func_hint
    for spec in (doc.get("parameters") or {}).get("properties", {}).values():
        if isinstance(spec, dict):
            spec["description"] = (spec.get("description") or "") + param_hint
            spec["type"] = "string"
            spec.pop("items", None)
            spec.pop("properties", None)
    return doc


def _tool_spec(doc: dict[str, Any]) -> ToolSpec:
    # Built without validation: BFCL's docs are the benchmark as published, quirks included, and
    # an entry must never be skipped because its schema is loose.
    return ToolSpec.model_construct(name=doc["name"], description=doc.get("description") or "",
                                    parameters=_json_schema(doc.get("parameters") or {}), returns=None)


def _json_schema(node: Any) -> Any:
    """BFCL's type vocabulary -> JSON Schema, recursively, with the float hint."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in ("type", "properties", "items", "optional")}
    bfcl_type = node.get("type")
    if isinstance(bfcl_type, str):
        out["type"] = _TYPES.get(bfcl_type, "string")
        if bfcl_type == "float":
            out["description"] = (node.get("description") or "") + FLOAT_HINT
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _json_schema(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _json_schema(node["items"])
    return out
