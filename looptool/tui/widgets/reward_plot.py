"""GRPO reward per logged step, all rounds in one line (plotext), a dotted line where a round begins."""

from __future__ import annotations

import plotext
from rich.text import Text
from textual.widget import Widget


def _frame(width: int, height: int, title: str) -> None:
    plotext.clf()
    plotext.plotsize(max(width, 20), max(height, 5))
    plotext.theme("clear")
    plotext.title(title)


class RewardPlot(Widget):
    """A line plot drawn with plotext at the widget's size."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rewards: list[float] = []
        self.round_starts: list[int] = []

    def show(self, rewards: list[float], round_starts: list[int]) -> None:
        if (rewards, round_starts) != (self.rewards, self.round_starts):
            self.rewards, self.round_starts = list(rewards), list(round_starts)
            self.refresh()

    def render(self) -> Text:
        _frame(self.size.width, self.size.height, "GRPO reward per step")
        if self.rewards:
            xs = list(range(1, len(self.rewards) + 1))
            plotext.plot(xs, self.rewards, marker="braille", color="cyan")
            for x in self.round_starts:
                plotext.vline(x - 0.5, "gray")
            plotext.xlabel("step (all rounds)")
        else:
            plotext.text("no training steps yet", x=0.5, y=0.5, alignment="center")
            plotext.xlim(0, 1)
            plotext.ylim(0, 1)
            plotext.xticks([])
            plotext.yticks([])
        return Text.from_ansi(plotext.build())
