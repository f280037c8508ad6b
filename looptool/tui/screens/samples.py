"""The sample browser: filters (round added, origin, probe category, verdict, scenario, split, tool,
free text), the count that match, and one page of them at a time (`Store.sample_page`: the
database filters and pages, nothing loads every sample). Enter opens a sample, t its dialogue's
trace."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from looptool.store import StoreError
from looptool.tui.widgets.sample_filters import SampleFilters, SampleQuery
from looptool.tui.widgets.sample_table import SampleTable

PAGE_SIZE = 100
DEBOUNCE_S = 0.25


@dataclass
class SamplePage:
    query: SampleQuery
    offset: int
    rows: list[dict[str, Any]]
    total: int
    all_samples: int
    options: dict[str, list[Any]]


class SamplesScreen(Screen):
    """Browse and filter samples."""

    BINDINGS = [
        Binding("enter", "open_sample", "Open", show=False),
        Binding("t", "open_trace", "Trace"),
        Binding("n", "next_page", "Next"),
        Binding("b", "previous_page", "Prev"),
        Binding("slash", "focus_search", "Search"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    class Loaded(Message):
        def __init__(self, page: SamplePage) -> None:
            super().__init__()
            self.page = page

    def __init__(self) -> None:
        super().__init__()
        self.query_value = SampleQuery()
        self.page_start = 0
        self.page: SamplePage | None = None
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield SampleFilters(id="filters")
        yield Static("loading…", id="sample-counts")
        yield SampleTable(id="samples")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "samples"
        self.query_one(SampleTable).focus()
        self.load()

    def on_screen_resume(self) -> None:
        if self.page is not None:
            self.load()  # the loop may have added samples or verdicts since

    @work(thread=True, exclusive=True, group="samples", exit_on_error=False)
    def load(self) -> None:
        query, offset = self.query_value, self.page_start
        try:
            with self.app.open_store() as store:
                rows, total = store.sample_page(**query.as_kwargs(), limit=PAGE_SIZE, offset=offset)
                all_samples = sum(store.sample_counts_by_origin(active_only=False).values())
                options = store.sample_filter_options()
        except (sqlite3.Error, StoreError) as exc:
            self.app.note_read_error(exc)
            self.app.call_from_thread(self.set_timer, 1.0, self.load)  # try again; the last page stays
            return
        self.post_message(self.Loaded(SamplePage(query, offset, rows, total, all_samples, options)))

    def on_samples_screen_loaded(self, message: Loaded) -> None:
        page = message.page
        if page.query != self.query_value or page.offset != self.page_start:
            return  # the filters moved on while this page was read
        self.page = page
        self.query_one(SampleFilters).set_choices(page.options)
        self.query_one(SampleTable).show(page.rows)
        first = page.offset + 1 if page.rows else 0
        self.query_one("#sample-counts", Static).update(
            f" {page.total} matching of {page.all_samples} samples · showing {first}–{page.offset + len(page.rows)}"
            + ("  (n: next page)" if page.offset + len(page.rows) < page.total else ""))

    def on_sample_filters_changed(self, message: SampleFilters.Changed) -> None:
        self.query_value = message.query
        self.page_start = 0
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self.load)

    @property
    def row_count(self) -> int:
        return self.query_one(SampleTable).row_count

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_sample()

    def action_open_sample(self) -> None:
        sample_id = self.query_one(SampleTable).selected_id
        if sample_id:
            self.app.open_sample(sample_id)

    def action_open_trace(self) -> None:
        sample_id = self.query_one(SampleTable).selected_id
        row = next((r for r in (self.page.rows if self.page else []) if r["id"] == sample_id), None)
        if row is None:
            return
        if not row["dialogue_id"]:
            self.notify("this sample has no dialogue (templated or expanded)", severity="warning")
            return
        self.app.open_trace(row["dialogue_id"])

    def action_next_page(self) -> None:
        if self.page and self.page_start + PAGE_SIZE < self.page.total:
            self.page_start += PAGE_SIZE
            self.load()

    def action_previous_page(self) -> None:
        if self.page_start > 0:
            self.page_start = max(0, self.page_start - PAGE_SIZE)
            self.load()

    def action_focus_search(self) -> None:
        self.query_one("#f-search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(SampleTable).focus()
