"""The policy's prompt: how tools, conversation history and calls are shown to the model.

Seed samples, GRPO training, probing and evaluation all render prompts here, so the model is
always asked in the same form it was trained on. Tools are written tersely (compact JSON, one per
line) because prompt length is what CPU training pays for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from looptool.calls import format_calls
from looptool.prompts import render
from looptool.schema import Message, ToolSpec

CALL_STYLE = "tool_call_tags"


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """One compact JSON object per tool: name, description, parameters (no output schema)."""
    return "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                   ensure_ascii=False, separators=(",", ":"))
        for t in tools
    )


def system_message(tools: Sequence[ToolSpec]) -> Message:
    """The system prompt: the tool list and the call format."""
    return Message(role="system", content=render("looptool.training", "system", tools=render_tools(tools)))


def assistant_text(message: Message) -> str:
    """What an assistant turn looks like to the policy: its calls in the call format, or its text."""
    if message.tool_calls:
        return format_calls(message.tool_calls, CALL_STYLE)
    return message.content or ""


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Role/content dicts for a chat template. Tool calls become text in the call format, and
    tool results are `tool` messages, which every chat template we use can render."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = assistant_text(m) if m.role == "assistant" else m.content or ""
        out.append({"role": m.role, "content": content})
    return out


def trim_history(
    messages: Sequence[Message], budget: int, count_tokens: Callable[[list[dict[str, Any]]], int]
) -> list[Message] | None:
    """Drop the oldest user exchanges until the prompt fits `budget` tokens.

    `messages` starts with the system message; everything from the last user message on is kept
    whole. Returns None when even that does not fit.
    """
    system, history = list(messages[:1]), list(messages[1:])
    while True:
        if count_tokens(chat_messages(system + history)) <= budget:
            return system + history
        user_idx = [i for i, m in enumerate(history) if m.role == "user"]
        if len(user_idx) < 2:
            return None
        history = history[user_idx[1]:]  # drop the oldest user turn and what answered it


def token_counter(model: str | None) -> Callable[[list[dict[str, Any]]], int]:
    """Count the tokens of a chat prompt with the policy's tokenizer.

    `model` is the embedded model's name or a local checkpoint directory; for a model that is not
    on this machine (an endpoint) the count is estimated as characters / 4.
    """
    from pathlib import Path

    from looptool.config import EMBEDDED_MODEL

    if model == EMBEDDED_MODEL:
        from looptool.serving.embedded import materialise

        path: Path | None = materialise(log=lambda *a: None)
    else:
        path = Path(model).expanduser() if model and Path(model).expanduser().is_dir() else None
    if path is None:
        return lambda chat: sum(len(m["content"]) + 8 for m in chat) // 4
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))

    def count(chat: list[dict[str, Any]]) -> int:
        ids = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return len(ids)

    return count
