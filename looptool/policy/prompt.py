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
from looptool.config import Thinking
from looptool.policy.weights import local_model_dir
from looptool.prompts import render
from looptool.schema import Label, Message, ToolSpec

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
    return Message(role="system", content=render("looptool.policy", "system", tools=render_tools(tools)))


def assistant_text(message: Message) -> str:
    """What an assistant turn looks like to the policy: its calls in the call format, or its text."""
    if message.tool_calls:
        return format_calls(message.tool_calls, CALL_STYLE)
    return message.content or ""


def label_text(label: Label) -> str:
    """A label as the policy should answer it: its calls in the call format, or its text."""
    return assistant_text(Message(role="assistant", content=label.text, tool_calls=label.calls))


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Role/content dicts for a chat template. Tool calls become text in the call format, and
    tool results are `tool` messages, which every chat template we use can render."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = assistant_text(m) if m.role == "assistant" else m.content or ""
        out.append({"role": m.role, "content": content})
    return out


def trim_history(
    messages: Sequence[Message], budget: int, count_tokens: Callable[[list[Message]], int]
) -> list[Message] | None:
    """Drop the oldest user exchanges until the prompt fits `budget` tokens.

    `messages` starts with the system message; everything from the last user message on is kept
    whole. Returns None when even that does not fit.
    """
    system, history = list(messages[:1]), list(messages[1:])
    while True:
        if count_tokens(system + history) <= budget:
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
    path = local_model_dir(model)
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


class PromptRenderer:
    """The policy's prompt as text, rendered by its tokenizer's own chat template.

    Training (SFT and GRPO) and probing render here, so the model always sees one form. A
    sample's leading system message is the tool prompt and is rebuilt from the sample's tools:

    * templates with native tool support (their Jinja source uses `tools`, e.g. Qwen3) get the
      tools through `apply_chat_template(tools=...)` in OpenAI function form and write the tool
      list and the `<tool_call>` instructions themselves;
    * templates without it (SmolLM2) get our system prompt (`prompts/system.md`): the tools as
      compact JSON and the same `<tool_call>` format, as plain text.

    Either way the answer format is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
    which `calls.parse_calls` reads.

    `thinking` is `[policy] thinking`. Reasoning templates that read `enable_thinking` (Qwen3) get
    it as `enable_thinking = (thinking == "on")` on every render, so training rows, probes and
    evaluation prompts agree; with it off, Qwen3's generation prompt ends with an empty
    `<think></think>` block. Templates without the switch render as they always do.
    """

    def __init__(self, tokenizer: Any, *, thinking: Thinking = "off") -> None:
        self.tokenizer = tokenizer
        self.thinking = thinking
        template = getattr(tokenizer, "chat_template", None) or ""
        self.native_tools = "tools" in template
        self.thinking_switch = "enable_thinking" in template

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec], *,
             system_note: str | None = None) -> list[dict[str, Any]]:
        """Role/content dicts for the template. `system_note` is extra system text of the
        conversation's own (e.g. a BFCL entry's system message): it follows the tool prompt."""
        if self.native_tools:
            history = list(messages[1:] if messages and messages[0].role == "system" else messages)
            note = [Message(role="system", content=system_note)] if system_note else []
            return chat_messages([*note, *history])
        return fallback_chat(messages, tools, system_note=system_note)

    def render(self, messages: Sequence[Message], tools: Sequence[ToolSpec], *, add_generation_prompt: bool = True,
               system_note: str | None = None) -> str:
        extra: dict[str, Any] = {"tools": [openai_tool(t) for t in tools]} if self.native_tools else {}
        if self.thinking_switch:
            extra["enable_thinking"] = self.thinking == "on"
        return self.tokenizer.apply_chat_template(
            self.chat(messages, tools, system_note=system_note), tokenize=False,
            add_generation_prompt=add_generation_prompt, **extra,
        )

    def answer(self, messages: Sequence[Message], tools: Sequence[ToolSpec], label: Label, *,
               system_note: str | None = None) -> str:
        """The label as the continuation of this prompt, written the way the chat template writes
        an assistant turn: whatever the template puts before the answer that the generation prompt
        does not already hold (Qwen3 with thinking on: an empty `<think></think>` block), then
        the answer in the call format. The end-of-turn token is left to the trainer. SFT learns
        this text and probing measures its perplexity, so both see the answer as the template does."""
        answer = label_text(label)
        prompt = self.render(messages, tools, system_note=system_note)
        turn = Message(role="assistant", content=label.text, tool_calls=label.calls)
        full = self.render([*messages, turn], tools, add_generation_prompt=False, system_note=system_note)
        rest = full[len(prompt):] if full.startswith(prompt) else ""
        if not answer or answer not in rest:
            return answer  # a template that rewrites the turn: the answer alone is the best guess
        return rest.split(answer, 1)[0] + answer

    def count_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> int:
        return len(self.tokenizer(self.render(messages, tools), add_special_tokens=False)["input_ids"])

    def fit(self, messages: Sequence[Message], tools: Sequence[ToolSpec], budget: int) -> list[Message] | None:
        """The messages with the oldest user exchanges dropped until the prompt fits `budget`
        tokens (TRL does not truncate prompts); None when even the last exchange does not fit."""
        history = list(messages[1:] if messages and messages[0].role == "system" else messages)
        fitted = trim_history([system_message(tools), *history], budget, lambda ms: self.count_tokens(ms, tools))
        return None if fitted is None else fitted[1:]


def fallback_chat(messages: Sequence[Message], tools: Sequence[ToolSpec], *,
                  system_note: str | None = None) -> list[dict[str, Any]]:
    """The chat for templates without tool support: our system prompt (tools + call format, then
    `system_note`) and the history. A leading system message is the tool prompt and is rebuilt."""
    history = list(messages[1:] if messages and messages[0].role == "system" else messages)
    system = system_message(tools)
    if system_note:
        system = Message(role="system", content=f"{system.content}\n\n{system_note}")
    return chat_messages([system, *history])


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    """A tool in OpenAI function form, as chat templates with native tool support expect it."""
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": tool.parameters}}


def load_renderer(model: str | None, *, thinking: Thinking = "off") -> PromptRenderer:
    """The renderer of a local model (embedded name or checkpoint directory); `thinking` is the
    config's `[policy] thinking`."""
    path = local_model_dir(model)
    if path is None:
        raise ValueError(f"model {model!r} is not on this machine: name the embedded model or a checkpoint directory")
    from transformers import AutoTokenizer

    return PromptRenderer(AutoTokenizer.from_pretrained(str(path)), thinking=thinking)
