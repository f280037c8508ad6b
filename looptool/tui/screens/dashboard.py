"""The dashboard: the loop's status line, the rounds table, the running stage with its progress
and rate, reward per step and accuracy per round, and the newest events.

It polls the database every `poll_interval` seconds in a worker thread: one cheap query
(`Store.activity_marks`) says whether anything changed, and only then are the rows read again.
Each read opens the store and closes it, so no read transaction outlives a poll; a read that fails
(say "database is locked" while a writer checkpoints) keeps the last data on screen and is tried
again on the next tick.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker

from looptool.schema import Round
from looptool.store import StoreError
from looptool.report import reference_points
from looptool.tui.data import (STOPPED, WAITING_FOR_REVIEW, accuracy_series, current_round, expected_eval_entries,
                               latest_eval_runs, reward_series, stage_progress)
from looptool.tui.loop_process import ProcessState
from looptool.tui.widgets.accuracy_plot import AccuracyPlot
from looptool.tui.widgets.event_log import EventLog
from looptool.tui.widgets.loop_status import LoopStatus
from looptool.tui.widgets.reward_plot import RewardPlot
from looptool.tui.widgets.rounds_table import RoundsTable
from looptool.tui.widgets.stage_progress import StageProgressBar


@dataclass
class DashboardData:
    """Everything the dashboard shows, read in one go."""

    marks: tuple[Any, ...]
    rounds: list[Round]
    verdicts: dict[int, dict[str, int]]
    events: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    activity: dict[str, int] = field(default_factory=dict)
    expected_eval: int | None = None
    review_round: int | None = None
    warm_start: bool = False  # the current round is one that starts with the SFT warm start
    references: list[Any] = field(default_factory=list)  # the base model and the warm start (report.Reference)


class DashboardScreen(Screen):
    """The loop at a glance, updated live."""

    BINDINGS = [Binding("f5", "refresh", "Refresh")]

    class Loaded(Message):
        """A poll found changes and read them."""

        def __init__(self, data: DashboardData) -> None:
            super().__init__()
            self.data = data

    def __init__(self) -> None:
        super().__init__()
        self.data: DashboardData | None = None
        self._poll: Worker | None = None
        self._events_after = 0
        self._references: tuple[tuple[Any, ...], list[Any]] = ((), [])  # (the marks they were read at, references)

    def compose(self) -> ComposeResult:
        yield Header()
        yield LoopStatus(id="loop-status")
        yield RoundsTable(id="rounds")
        yield StageProgressBar(id="stage")
        with Horizontal(id="plots"):
            yield RewardPlot(id="reward-plot")
            yield AccuracyPlot(id="accuracy-plot")
        yield EventLog(id="events")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "dashboard"
        self.set_interval(self.app.poll_interval, self.tick)
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        """Start a poll unless one is still reading; redraw what depends on the clock and on the
        loop process."""
        process = self._show_status()
        if self.data is not None:
            self._show_progress(self.data, process)
        if self._poll is not None and self._poll.is_running:
            return
        self._poll = self.poll(force or self.data is None)

    def action_refresh(self) -> None:
        self.tick(force=True)

    @work(thread=True, group="dashboard-poll", exit_on_error=False)
    def poll(self, force: bool) -> None:
        app = self.app
        known = None if force or self.data is None else self.data.marks
        try:
            with app.open_store() as store:
                marks = store.activity_marks()
                if marks == known:
                    return
                rounds = store.rounds()
                verdicts = {r.n: store.verdict_counts(r.n) for r in rounds}
                events = store.events(limit=200, since_id=self._events_after)
                steps = store.all_train_steps("grpo")
                now = current_round(rounds)
                activity = store.round_activity(now.n) if now is not None else {}
                heldout = store.sample_counts_by_split().get("heldout", 0)
                references = self._read_references(store, rounds, marks)
            review_round = app.read_review_round()
        except (sqlite3.Error, StoreError) as exc:
            app.note_read_error(exc)  # the last data stays; the next tick reads again
            return
        warm_start = False
        if now is not None and now.n == 1:
            from looptool.training.sft import warm_start_wanted

            warm_start = warm_start_wanted(app.config)
        expected = None
        if now is not None and now.stage == "evaluate":
            try:
                expected = expected_eval_entries(app.config, heldout)
            except Exception:  # noqa: BLE001 - a progress total is a nicety; unknown is shown as such
                expected = None
        self.post_message(self.Loaded(DashboardData(marks, rounds, verdicts, events, steps, activity, expected,
                                                    review_round, warm_start, references)))

    def _read_references(self, store: Any, rounds: list[Round], marks: tuple[Any, ...]) -> list[Any]:
        """The base model's and the warm start's accuracy, read again only when the rounds or the
        evaluation results changed (the marks' rounds and results), not on every event."""
        key = (marks[1], marks[-1]) if len(marks) > 1 else marks
        if key != self._references[0] or not key:
            self._references = (key, reference_points(store, latest_eval_runs(rounds)))
        return self._references[1]

    def on_dashboard_screen_loaded(self, message: Loaded) -> None:
        data = message.data
        self.data = data
        if data.events:
            self._events_after = data.events[-1]["id"]
        self.app.review_round = data.review_round
        self.query_one(RewardPlot).show(*reward_series(data.steps))
        self.query_one(AccuracyPlot).show(accuracy_series(data.rounds, data.references))
        self.query_one(EventLog).add_events(data.events)
        self._show_progress(data, self._show_status())

    def _review_verdicts(self) -> int | None:
        """How many verdicts the round at the review gate has (None: no round waits)."""
        waiting = self.app.review_round
        if waiting is None or self.data is None:
            return None
        return sum(self.data.verdicts.get(waiting, {}).values())

    def _show_progress(self, data: DashboardData, process: ProcessState) -> None:
        """The rounds table and the stage's progress bar: they depend on the loop process too (a
        round whose row says running while no loop runs was stopped, and is shown so)."""
        stopped = not process.running and process.elsewhere_pid is None
        self.query_one(RoundsTable).show(data.rounds, data.verdicts, stopped=stopped, waiting=self.app.review_round)
        now = current_round(data.rounds)
        progress = None if now is None else stage_progress(now, data.activity, self.app.config, self.app.clock(),
                                                           data.expected_eval, data.warm_start)
        if progress is not None and now.n == self.app.review_round:
            # Nothing runs while the gate waits: no bar, no rate; the count is what there is to review.
            progress = replace(progress, status=WAITING_FOR_REVIEW, done=self._review_verdicts())
        elif progress is not None and progress.status == "running" and stopped:
            # The row says running, but no loop runs (it was killed): nothing moves until s.
            progress = replace(progress, status=STOPPED)
        self.query_one(StageProgressBar).show(progress)

    def _show_status(self) -> ProcessState:
        process = self.app.loop_process.state()
        self.query_one(LoopStatus).show(self.app.config.name, process, self.app.review_round, self._review_verdicts())
        return process
