"""The running stage of the current round: a label, a progress bar, and the rate."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from looptool.tui.data import StageProgress


class StageProgressBar(Vertical):
    """Progress of the stage a round is in, counted from the rows it writes."""

    def compose(self) -> ComposeResult:
        yield Label("no round has started yet", id="stage-label")
        yield ProgressBar(total=1, show_eta=False, id="stage-bar")

    def show(self, progress: StageProgress | None) -> None:
        label = self.query_one("#stage-label", Label)
        bar = self.query_one("#stage-bar", ProgressBar)
        if progress is None:
            label.update("no round has started yet")
            bar.display = False
            return
        label.update(progress.label)
        # An unknown total would animate an indeterminate bar; the label says enough then.
        bar.display = progress.status == "running" and progress.total is not None and progress.done is not None
        if bar.display:
            bar.update(total=max(progress.total or 0, 1), progress=progress.done)
