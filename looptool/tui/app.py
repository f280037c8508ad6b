"""`looptool tui`: the Textual app on one workspace.

Five modes, each a screen with its own stack: dashboard (1), samples (2), traces (3), review (4)
and config (5); a sample's detail and a dialogue's trace are pushed onto the current stack and
escape goes back. Every action has a key in the footer and an entry in the command palette
(ctrl+p). The loop itself runs as a child process (`LoopProcess`): s starts it, p asks it to
pause after the current stage, x stops it.

The app only reads the database, in worker threads, through `Store`s opened for one read and
closed again; the one thing it writes is a person's review decision. A failed read (the file
busy, say) is logged and retried on the next poll, never shown as an error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from looptool.config import DB_FILE, ConfigError, WorkspaceConfig, load_config
from looptool.store import Store, StoreError
from looptool.tui.loop_process import LoopProcess
from looptool.tui.screens.config import ConfigScreen
from looptool.tui.screens.dashboard import DashboardScreen
from looptool.tui.screens.review import ReviewScreen
from looptool.tui.screens.sample_detail import SampleDetailScreen
from looptool.tui.screens.samples import SamplesScreen
from looptool.tui.screens.trace import TraceScreen

MODE_TITLES = {"dashboard": "Dashboard", "samples": "Samples", "traces": "Traces", "review": "Review",
               "config": "Config"}

# Screen-specific actions offered in the command palette: screen type -> (title, help, action).
SCREEN_COMMANDS: dict[type[Screen], list[tuple[str, str, str]]] = {
    SamplesScreen: [("Open sample", "The highlighted sample in detail", "open_sample"),
                    ("Open trace of sample", "The dialogue the highlighted sample came from", "open_trace"),
                    ("Next page of samples", "The next page of matching samples", "next_page"),
                    ("Previous page of samples", "The previous page of matching samples", "previous_page"),
                    ("Search samples", "Focus the free-text search", "focus_search")],
    ReviewScreen: [("Accept verdict", "Keep the judge's verdict for the highlighted sample", "accept"),
                   ("Override verdict with the other answer",
                    "Take the prediction instead of keeping the label, or back", "override"),
                   ("Drop sample", "Mark the highlighted sample BOTH_WRONG: it leaves training", "drop"),
                   ("Open sample", "The highlighted sample in detail", "open_sample")],
    SampleDetailScreen: [("Open trace of sample", "The dialogue this sample came from", "open_trace"),
                         ("Back", "Close the sample", "back")],
    TraceScreen: [("Back", "Close the trace", "back")],
    ConfigScreen: [("Check endpoint health", "Read the config again and ask every endpoint", "check_health")],
    DashboardScreen: [("Refresh dashboard", "Read everything again now", "refresh")],
}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class LoopToolApp(App):
    """The LoopTool terminal UI on one workspace."""

    CSS_PATH = "looptool.tcss"
    TITLE = "LoopTool"
    MODES = {"dashboard": DashboardScreen, "samples": SamplesScreen, "traces": TraceScreen,
             "review": ReviewScreen, "config": ConfigScreen}
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("1", "switch_mode('dashboard')", "Dash"),
        Binding("2", "switch_mode('samples')", "Samples"),
        Binding("3", "switch_mode('traces')", "Traces"),
        Binding("4", "switch_mode('review')", "Review"),
        Binding("5", "switch_mode('config')", "Config"),
        Binding("s", "start_loop", "Start"),
        Binding("p", "pause_loop", "Pause"),
        Binding("x", "stop_loop", "Stop"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, workspace: Path, *, loop_command: Sequence[str] | None = None,
                 review_command: Sequence[str] | None = None, poll_interval: float = 0.5,
                 clock: Callable[[], datetime] = _utc_now, config: WorkspaceConfig | None = None) -> None:
        super().__init__()
        self.workspace = Path(workspace)
        self.db_path = self.workspace / DB_FILE
        self.config = config or load_config(self.workspace)
        self.loop_process = LoopProcess(self.workspace, loop_command=loop_command, review_command=review_command)
        self.poll_interval = poll_interval
        self.clock = clock
        self.review_round: int | None = None
        self.read_errors = 0

    # -- reading ----------------------------------------------------------------------------------

    def open_store(self) -> Store:
        """A store for one read; close it (use `with`) so no read transaction stays open."""
        return Store.open(self.db_path)

    def read_review_round(self) -> int | None:
        """The round waiting at the review gate (LangGraph's checkpoint says; see review_pending)."""
        from looptool.loop.control import review_pending

        return review_pending(self.workspace)

    def note_read_error(self, exc: Exception) -> None:
        """A read failed (the database busy, say): count it and log it; the caller keeps its last
        data and reads again later. Safe to call from a worker thread."""
        self.read_errors += 1
        self.log.warning(f"read failed, will retry: {exc}")

    # -- navigation -------------------------------------------------------------------------------

    def open_sample(self, sample_id: str) -> None:
        self.push_screen(SampleDetailScreen(sample_id))

    def open_trace(self, dialogue_id: str) -> None:
        self.push_screen(TraceScreen(dialogue_id))

    # -- the loop process -------------------------------------------------------------------------

    def action_start_loop(self) -> None:
        if self.loop_process.running:
            self.notify("the loop is already running", severity="warning")
            return
        self._start_unless_done()

    @work(thread=True, group="loop-start", exit_on_error=False)
    def _start_unless_done(self) -> None:
        """Start the loop, unless it has done the rounds it is configured for: then say so, and how
        to add rounds (`looptool loop` would only end at once)."""
        why = None
        try:
            config = load_config(self.workspace)  # read again: the file may have been edited to add rounds
            with self.open_store() as store:
                done = max((r.n for r in store.rounds() if r.status == "done"), default=0)
            if done and done >= config.loop.rounds:
                why = (f"nothing to run: the loop has done {done} rounds and [loop] rounds is "
                       f"{config.loop.rounds}. To add rounds, set rounds = {done + 1} (or more) under [loop] in "
                       f"looptool.toml and press s again, or run 'looptool loop --rounds {done + 1} -w "
                       f"{self.workspace}'")
        except (ConfigError, sqlite3.Error, StoreError) as exc:
            self.note_read_error(exc)  # the loop itself says what is wrong, in its log
        self.call_from_thread(self._start_now, why)

    def _start_now(self, why: str | None) -> None:
        if why is not None:
            self.notify(why, severity="warning", timeout=15, markup=False)
            return
        if self.loop_process.running:  # (s pressed twice)
            return
        try:
            pid = self.loop_process.start()
        except (OSError, RuntimeError) as exc:
            self.notify(f"cannot start the loop: {exc}", severity="error")
            return
        self.notify(f"loop started (pid {pid}); output in {self.loop_process.log_path.name}")

    def action_pause_loop(self) -> None:
        state = self.loop_process.state()
        if not state.running and state.elsewhere_pid is None:
            # No request is left behind: a loop started later drops it anyway, but it would show as pending.
            self.notify("no loop is running on this workspace: nothing to pause", severity="warning")
            return
        self.loop_process.pause()
        self.notify("pause requested: the loop stops after its current stage; s starts it again")

    def action_stop_loop(self) -> None:
        if not self.loop_process.running:
            elsewhere = self.loop_process.state().elsewhere_pid
            self.notify("no loop started from here is running" if elsewhere is None else
                        f"the loop (pid {elsewhere or '?'}) was started elsewhere: p pauses it after its stage",
                        severity="warning")
            return
        self._stop_loop()

    @work(thread=True, exclusive=True, group="loop-stop")
    def _stop_loop(self) -> None:
        code = self.loop_process.stop()
        left = self.loop_process.left_running()
        self.call_from_thread(self.notify, f"loop stopped (exit {code}); s starts it again from where it was"
                              + (f"; {left}" if left else ""), timeout=15 if left else None, markup=False)

    def action_resume_review(self) -> None:
        """Apply the reviewed verdicts and go on: `looptool review --accept` as the child process."""
        if self.loop_process.running:
            self.notify("the loop is already running", severity="warning")
            return
        try:
            pid = self.loop_process.start(release_review=True)
        except (OSError, RuntimeError) as exc:
            self.notify(f"cannot start the loop: {exc}", severity="error")
            return
        self.review_round = None
        self.notify(f"loop resumed after review (pid {pid})")

    # -- command palette --------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in MODE_TITLES.items():
            yield SystemCommand(f"Go to {title.lower()}", f"Switch to the {title} screen",
                                partial(self.switch_mode, mode))
        yield SystemCommand("Start loop", "Run 'looptool loop' on this workspace as a child process",
                            self.action_start_loop)
        yield SystemCommand("Pause loop", "Stop the loop after its current stage (any loop on this workspace)",
                            self.action_pause_loop)
        yield SystemCommand("Stop loop", "SIGTERM the loop started from here; it resumes where it was",
                            self.action_stop_loop)
        yield SystemCommand("Resume loop after review", "Apply the reviewed verdicts and go on with the loop",
                            self.action_resume_review)
        for kind, commands in SCREEN_COMMANDS.items():
            if isinstance(screen, kind):
                for title, help_text, action in commands:
                    yield SystemCommand(title, help_text, partial(screen.run_action, action))

