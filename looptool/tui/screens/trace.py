"""The trace inspector: the seed dialogues on the left, the highlighted one as a transcript on the
right -- its plan, each agent's turn with role, model, latency and tokens, raw versus parsed
output, tool calls and simulated results, and rejected turns with the reason."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from looptool.schema import Dialogue
from looptool.store import StoreError
from looptool.tui.widgets.dialogue_list import DialogueList
from looptool.tui.widgets.transcript import Transcript


@dataclass
class DialogueTrace:
    dialogue: Dialogue
    messages: list[dict[str, Any]]
    traces: list[dict[str, Any]]


class TraceScreen(Screen):
    """Dialogues and their agent traces. Opened from a sample, it starts on that sample's dialogue."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("left", "focus_list", "List", show=False),
        Binding("right", "focus_transcript", "Transcript", show=False),
    ]

    class ListLoaded(Message):
        def __init__(self, rows: list[dict[str, Any]]) -> None:
            super().__init__()
            self.rows = rows

    class TraceLoaded(Message):
        def __init__(self, trace: DialogueTrace | None, dialogue_id: str) -> None:
            super().__init__()
            self.trace = trace
            self.dialogue_id = dialogue_id

    def __init__(self, dialogue_id: str | None = None) -> None:
        super().__init__()
        self.dialogue_id = dialogue_id
        self.shown: DialogueTrace | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield DialogueList(id="dialogues")
            yield Transcript(id="transcript")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "traces"
        self.query_one(DialogueList).focus()
        self.load_list()

    @work(thread=True, exclusive=True, group="dialogue-list", exit_on_error=False)
    def load_list(self) -> None:
        try:
            with self.app.open_store() as store:
                rows = store.dialogue_rows()
        except (sqlite3.Error, StoreError) as exc:
            self.app.note_read_error(exc)
            self.app.call_from_thread(self.set_timer, 1.0, self.load_list)
            return
        self.post_message(self.ListLoaded(rows))

    def on_trace_screen_list_loaded(self, message: ListLoaded) -> None:
        listing = self.query_one(DialogueList)
        listing.show(message.rows, self.dialogue_id)
        if not message.rows:
            self.query_one(Transcript).show_text("no dialogues yet: 'looptool seed' makes them")
        elif self.dialogue_id is None:
            self.dialogue_id = listing.selected_id
            self.load_trace(self.dialogue_id)
        else:
            self.load_trace(self.dialogue_id)

    @work(thread=True, exclusive=True, group="dialogue-trace", exit_on_error=False)
    def load_trace(self, dialogue_id: str) -> None:
        try:
            with self.app.open_store() as store:
                trace = DialogueTrace(store.get_dialogue(dialogue_id, with_messages=False),
                                      store.message_rows(dialogue_id), store.traces(dialogue_id))
        except KeyError:
            trace = None
        except (sqlite3.Error, StoreError) as exc:
            self.app.note_read_error(exc)
            return
        self.post_message(self.TraceLoaded(trace, dialogue_id))

    def on_trace_screen_trace_loaded(self, message: TraceLoaded) -> None:
        if message.dialogue_id != self.dialogue_id:
            return
        transcript = self.query_one(Transcript)
        self.shown = message.trace
        if message.trace is None:
            transcript.show_text(f"no dialogue {message.dialogue_id}")
        else:
            transcript.show(message.trace.dialogue, message.trace.messages, message.trace.traces)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        chosen = event.row_key.value if event.row_key is not None else None
        if chosen and chosen != self.dialogue_id:
            self.dialogue_id = chosen
            self.load_trace(chosen)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_focus_transcript()

    def action_focus_list(self) -> None:
        self.query_one(DialogueList).focus()

    def action_focus_transcript(self) -> None:
        self.query_one(Transcript).focus()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
