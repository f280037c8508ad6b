"""A sample's label beside a model's prediction, with what differs highlighted: calls the
prediction misses (red, on the label's side) and calls it adds (red, on the prediction's side),
compared with the matcher every stage uses (`calls.diff_calls`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from looptool.calls import diff_calls, match_key
from looptool.display import calls_text
from looptool.schema import Label, ToolCall


def _side(calls: list[ToolCall], text: str | None, odd: list[ToolCall], title: str, differs: bool) -> Text:
    out = Text.assemble((title + "\n", "bold underline"))
    if not calls:
        out.append(f"(no call) {text or ''}".rstrip(), style="bold red" if differs else "green")
        return out
    odd_keys = [match_key(c) for c in odd]
    for call in calls:
        key = match_key(call)
        bad = key in odd_keys
        if bad:
            odd_keys.remove(key)
        out.append(("✗ " if bad else "✓ ") + calls_text([call]).strip("[]") + "\n",
                   style="bold red" if bad else "green")
    return out


class LabelDiff(Horizontal):
    """Label | prediction, side by side."""

    def compose(self) -> ComposeResult:
        yield Static("", id="diff-label", classes="diff-side")
        yield Static("", id="diff-prediction", classes="diff-side")

    def show(self, label: Label | None, prediction: list[ToolCall] | None, raw: str | None = None,
             title: str = "prediction") -> None:
        left = self.query_one("#diff-label", Static)
        right = self.query_one("#diff-prediction", Static)
        if label is None:
            left.update("")
            right.update("")
            return
        predicted = prediction or []
        diff = diff_calls(predicted, label.calls)
        both_text = not label.calls and not predicted
        differs = bool(diff["missing"] or diff["extra"]) or (not label.calls) != (not predicted)
        left.update(_side(label.calls, label.text, diff["missing"], "label", differs and not both_text))
        pred_text = raw if not predicted else None
        right.update(_side(predicted, pred_text, diff["extra"], title, differs and not both_text)
                     if prediction is not None or raw is not None else Text("(not probed)", style="dim"))
