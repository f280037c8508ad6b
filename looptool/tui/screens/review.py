"""The review gate: the judge's verdicts of the round the loop waits on, to accept (a), override
with the other answer (o: take the prediction instead of keeping the label, or back), or drop the
sample (d: BOTH_WRONG); then resume the loop (r), which applies them.

Whether the loop waits at the gate is read from LangGraph's checkpoint (`loop.control.review_pending`),
not from the round rows: see there why the rows cannot tell. When it does not wait, the latest
round's verdicts are still shown and a decision is still recorded, as `looptool review` does: it
counts when the round's verdicts are applied, if they have not been yet.

Like the dashboard, the screen polls (`Store.activity_marks`) and reads the verdicts again when
anything changed, so an override made with `looptool review` shows here too.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from looptool.display import calls_text, short
from looptool.review import how_reached
from looptool.store import StoreError
from looptool.tui.data import other_answer
from looptool.tui.widgets.label_diff import LabelDiff
from looptool.tui.widgets.verdict_table import VerdictTable


@dataclass
class ReviewData:
    round: int | None
    waiting: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    marks: tuple[Any, ...] = ()  # the database's activity marks when it was read


class ReviewScreen(Screen):
    """Review the judge's verdicts and release the loop."""

    BINDINGS = [
        Binding("a", "accept", "Accept"),
        Binding("o", "override", "Other"),
        Binding("d", "drop", "Drop"),
        Binding("r", "resume", "Resume"),
        Binding("enter", "open_sample", "Open", show=False),
    ]

    class Loaded(Message):
        def __init__(self, data: ReviewData) -> None:
            super().__init__()
            self.data = data

    def __init__(self) -> None:
        super().__init__()
        self.data: ReviewData | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading…", id="review-banner")
        yield VerdictTable(id="verdicts")
        yield LabelDiff(id="review-diff")
        yield Static("", id="review-rationale")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "review"
        self.query_one(VerdictTable).focus()
        self.set_interval(self.app.poll_interval, self.tick)
        self.load()

    def on_screen_resume(self) -> None:
        if self.data is not None:
            self.load()

    def _busy(self, group: str) -> bool:
        return any(w.group == group and w.node is self and w.is_running for w in self.workers)

    def tick(self) -> None:
        """Start a poll, unless one is still reading or the screen is not shown."""
        if self.data is not None and self.is_current and not self._busy("review-poll"):
            self.poll(self.data.marks)

    @work(thread=True, group="review-poll", exit_on_error=False)
    def poll(self, known: tuple[Any, ...]) -> None:
        """Read the verdicts again when the database changed since they were read (one cheap query)."""
        try:
            with self.app.open_store() as store:
                marks = store.activity_marks()
        except (sqlite3.Error, StoreError) as exc:
            self.app.note_read_error(exc)
            return
        if marks != known:
            self.app.call_from_thread(self._reload)

    def _reload(self) -> None:
        if not self._busy("review"):  # a read under way shows the change already (and is not cut short)
            self.load()

    @work(thread=True, exclusive=True, group="review", exit_on_error=False)
    def load(self) -> None:
        app = self.app
        try:
            waiting_round = app.read_review_round()
            with app.open_store() as store:
                marks = store.activity_marks()
                with_verdicts = [r.n for r in store.rounds() if store.verdict_counts(r.n)]
                r = waiting_round or (with_verdicts[-1] if with_verdicts else None)
                rows = []
                if r is not None:
                    predictions = {p.sample_id: p for p in store.probes(r)}
                    for v in store.verdicts(r):
                        try:
                            label = store.get_sample(v.sample_id).label
                        except KeyError:
                            label = None
                        probe = predictions.get(v.sample_id)
                        rows.append({"verdict": v, "label": label, "probe": probe,
                                     "prediction": _prediction_text(probe)})
        except (sqlite3.Error, StoreError) as exc:
            app.note_read_error(exc)
            app.call_from_thread(self.set_timer, 1.0, self.load)
            return
        self.post_message(self.Loaded(ReviewData(r, waiting_round is not None, rows, marks)))

    def on_review_screen_loaded(self, message: Loaded) -> None:
        data = self.data = message.data
        self.app.review_round = data.round if data.waiting else None
        banner = self.query_one("#review-banner", Static)
        if data.round is None:
            banner.update(Text(" no verdicts yet: the judge gives them in a round's verify stage", style="dim"))
        elif data.waiting:
            counts: dict[str, int] = {}
            for row in data.rows:
                kind = row["verdict"].effective
                counts[kind] = counts.get(kind, 0) + 1
            banner.update(Text(f" the loop waits for review of round {data.round}: {len(data.rows)} verdicts ("
                               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                               + ") · a accept · o other answer · d drop · r resume the loop", style="bold yellow"))
        else:
            banner.update(Text(f" round {data.round}'s verdicts · the loop is not waiting at the review gate: a "
                               "decision here counts when this round's verdicts are applied, if they have not been "
                               "yet", style="dim"))
        self.query_one(VerdictTable).show(data.rows)
        self._show_selected()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_sample()

    def _selected_row(self) -> dict[str, Any] | None:
        sample_id = self.query_one(VerdictTable).selected_id
        return next((r for r in (self.data.rows if self.data else []) if r["verdict"].sample_id == sample_id), None)

    def _show_selected(self) -> None:
        row = self._selected_row()
        diff = self.query_one(LabelDiff)
        rationale = self.query_one("#review-rationale", Static)
        if row is None:
            diff.show(None, None)
            rationale.update("")
            return
        probe = row["probe"]
        diff.show(row["label"], None if probe is None else probe.prediction, None if probe is None else probe.raw)
        v = row["verdict"]
        # How the verdict was reached (the rationale says why when no judge was asked or answered).
        text = Text.assemble((f"{how_reached(v)}: {v.verdict}", "bold"))
        if v.human_override:
            text.append(f" -> your override {v.human_override}", style="bold yellow")
        text.append("\n" + short(v.rationale, 600))
        rationale.update(text)

    # -- decisions --------------------------------------------------------------------------------

    def _decide(self, choose) -> None:
        row = self._selected_row()
        if row is None or self.data is None or self.data.round is None:
            return
        v = row["verdict"]
        self.save(v.sample_id, self.data.round, choose(v))

    def action_accept(self) -> None:
        self._decide(lambda v: None)

    def action_override(self) -> None:
        self._decide(other_answer)

    def action_drop(self) -> None:
        self._decide(lambda v: None if v.verdict == "BOTH_WRONG" else "BOTH_WRONG")

    @work(thread=True, group="review-save")
    def save(self, sample_id: str, round: int, override: str | None) -> None:
        try:
            with self.app.open_store() as store:
                store.set_human_override(sample_id, round, override)
        except (sqlite3.Error, StoreError, KeyError) as exc:
            self.app.call_from_thread(self.notify, f"not saved, try again: {short(str(exc), 80)}", severity="error")
            return
        self.app.call_from_thread(self.load)

    def action_resume(self) -> None:
        self.app.action_resume_review()

    def action_open_sample(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.app.open_sample(row["verdict"].sample_id)


def _prediction_text(probe: Any) -> str:
    if probe is None:
        return "(not probed)"
    if probe.prediction:
        return calls_text(probe.prediction)
    return short(probe.raw, 60) or "(no call)"
