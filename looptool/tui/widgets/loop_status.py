"""One line on the loop: whether a loop runs (started here or elsewhere), a pending pause, the review gate."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from looptool.tui.loop_process import ProcessState


class LoopStatus(Static):
    """The loop's state in one line, above the dashboard."""

    def show(self, workspace_name: str, process: ProcessState, review_round: int | None,
             review_verdicts: int | None = None) -> None:
        text = Text()
        text.append(f" {workspace_name} ", style="bold reverse")
        text.append("  loop: ")
        if process.running:
            text.append(f"{process.what} running (pid {process.pid})", style="bold green")
        elif process.elsewhere_pid is not None:
            text.append(f"running, started elsewhere (pid {process.elsewhere_pid or '?'})", style="bold green")
        elif process.what:
            code = process.exit_code
            text.append(f"{process.what} ended" + ("" if code == 0 else f" (exit {code})"),
                        style="" if code == 0 else "bold red")
        else:
            text.append("not started from here", style="dim")
        if process.pause_requested:
            text.append("  · pause requested: stops after the current stage", style="yellow")
        if review_round is not None:
            verdicts = "its" if review_verdicts is None else f"{review_verdicts}"
            text.append(f"  · round {review_round} waits for review: press 4 to review {verdicts} verdicts",
                        style="bold yellow")
        self.update(text)
