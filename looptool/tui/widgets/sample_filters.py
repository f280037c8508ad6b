"""The filters of the sample browser: round added, origin, probe category, verdict, scenario and
split (choices), a tool name and a free-text search (which also matches origin and scenario);
posts `Changed` with the filters in force."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

CATEGORIES = ("mastered", "boundary", "failed")
VERDICTS = ("LABEL_WRONG", "PRED_WRONG", "BOTH_OK", "BOTH_WRONG")
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class SampleQuery:
    """The filters of `Store.sample_page`, as chosen."""

    round_added: int | None = None
    origin: str | None = None
    category: str | None = None
    verdict: str | None = None
    scenario: str | None = None
    split: str | None = None
    tool: str | None = None
    search: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {"round_added": self.round_added, "origin": self.origin, "category": self.category,
                "verdict": self.verdict, "scenario": self.scenario, "split": self.split, "tool": self.tool,
                "search": self.search}


def _value(select: Select) -> Any:
    return None if select.value is Select.NULL else select.value


class SampleFilters(Horizontal):
    """A row of compact filter controls."""

    class Changed(Message):
        """The filters changed."""

        def __init__(self, query: SampleQuery) -> None:
            super().__init__()
            self.query = query

    def compose(self) -> ComposeResult:
        yield Select([], prompt="round", id="f-round", compact=True)
        yield Select([], prompt="origin", id="f-origin", compact=True)
        yield Select([(c, c) for c in CATEGORIES], prompt="probe", id="f-category", compact=True)
        yield Select([(v, v) for v in VERDICTS], prompt="verdict", id="f-verdict", compact=True)
        yield Select([], prompt="scenario", id="f-scenario", compact=True)
        yield Select([(v, v) for v in SPLITS], prompt="split", id="f-split", compact=True)
        yield Input(placeholder="tool name", id="f-tool", compact=True)
        yield Input(placeholder="/ search text", id="f-search", compact=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._choices: dict[str, list[Any]] = {}

    def set_choices(self, options: dict[str, list[Any]]) -> None:
        """Fill the choice lists from `Store.sample_filter_options`, keeping what is chosen; lists
        that did not change are left alone (an open list stays open)."""
        if options == self._choices:
            return
        self._choices = options
        for select_id, key, label in (("#f-round", "rounds", lambda v: f"round {v}"),
                                      ("#f-origin", "origins", str), ("#f-scenario", "scenarios", str)):
            select = self.query_one(select_id, Select)
            values = options.get(key, [])
            current = select.value
            with self.prevent(Select.Changed):
                select.set_options([(label(v), v) for v in values])
                if current is not Select.NULL and current in values:
                    select.value = current

    @property
    def query_value(self) -> SampleQuery:
        tool = self.query_one("#f-tool", Input).value.strip()
        search = self.query_one("#f-search", Input).value.strip()
        return SampleQuery(
            round_added=_value(self.query_one("#f-round", Select)),
            origin=_value(self.query_one("#f-origin", Select)),
            category=_value(self.query_one("#f-category", Select)),
            verdict=_value(self.query_one("#f-verdict", Select)),
            scenario=_value(self.query_one("#f-scenario", Select)),
            split=_value(self.query_one("#f-split", Select)),
            tool=tool or None, search=search or None,
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.query_value))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.query_value))
