"""The chat template of an exported model: LoopTool's prompt, without LoopTool.

Training renders a prompt with `policy.prompt.PromptRenderer`: the policy tokenizer's own chat
template, given role/content messages in which calls are `<tool_call>` text, and -- for a template
without tool support, such as SmolLM2's -- LoopTool's system prompt (`policy/prompts/system.md`)
holding the tools. An exported tokenizer carries that as its chat template: `chat_template.jinja`
(this package) rewrites the request's OpenAI-style messages and tools the way the renderer does,
then the base template follows unchanged. So `tokenizer.apply_chat_template(messages, tools=tools,
add_generation_prompt=True)` -- or a vLLM server's chat endpoint -- gives exactly the text the
model was trained and evaluated on.
"""

from __future__ import annotations

import json
from importlib import resources
from string import Template
from typing import Any

from looptool.config import Thinking
from looptool.export.files import ExportError
from looptool.prompts import render

TOOLS_MARK = "\x00tools\x00"


def tool_prompt_parts() -> tuple[str, str]:
    """LoopTool's system prompt before and after its tool list."""
    head, sep, tail = render("looptool.policy", "system", tools=TOOLS_MARK).partition(TOOLS_MARK)
    if not sep:
        raise ExportError("the policy's system prompt (policy/prompts/system.md) has no $tools placeholder")
    return head, tail


def _jinja_string(text: str) -> str:
    """`text` as a Jinja string literal (Jinja reads JSON's escapes)."""
    return json.dumps(text, ensure_ascii=False)


def looptool_chat_template(base_template: str | None, *, thinking: Thinking = "off") -> str:
    """The exported chat template: LoopTool's prelude, then `base_template` (the policy tokenizer's).
    `thinking` is `[policy] thinking`: the default of `enable_thinking`, as training rendered."""
    if not base_template:
        raise ExportError("the policy's tokenizer has no chat template, so there is no prompt to export")
    head, tail = tool_prompt_parts()
    prelude = Template(resources.files("looptool.export").joinpath("chat_template.jinja").read_text())
    filled = prelude.substitute(native="true" if "tools" in base_template else "false",
                                thinking="true" if thinking == "on" else "false",
                                prompt_head=_jinja_string(head), prompt_tail=_jinja_string(tail))
    return filled.rstrip("\n") + base_template


def with_looptool_template(tokenizer: Any, *, thinking: Thinking = "off") -> Any:
    """`tokenizer` with the exported chat template (changed in place; returned)."""
    tokenizer.chat_template = looptool_chat_template(getattr(tokenizer, "chat_template", None), thinking=thinking)
    return tokenizer
