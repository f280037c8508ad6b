"""Calls, labels and other texts as one line or a short block for people to read.

The CLI, the terminal UI, the review and the exports show the same things the same way, so the
wording lives here, below all of them (the policy's own prompt text is `policy.prompt`).
"""

from __future__ import annotations

from collections.abc import Sequence

from looptool.calls import format_calls
from looptool.schema import Label, ToolCall


def calls_text(calls: Sequence[ToolCall]) -> str:
    """Calls as Python-style text where they can be, else JSON."""
    if not calls:
        return "(no call)"
    try:
        return format_calls(list(calls), "python")
    except ValueError:
        return format_calls(list(calls), "json")


def label_shown(label: Label) -> str:
    """A label as a person reads it: its calls, or "(no call)" and its text. (The policy's own
    text of a label, what it is trained to write, is `policy.prompt.label_text`.)"""
    return calls_text(label.calls) if label.calls else f"(no call) {label.text or ''}".strip()


def label_summary(label: Label, width: int = 60) -> str:
    """A one-line label for tables."""
    text = " ".join(label_shown(label).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def short(text: str | None, width: int) -> str:
    """One line, at most `width` characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
