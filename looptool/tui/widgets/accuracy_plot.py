"""Held-out and BFCL-subset accuracy per evaluated round, from the base model and the warm start on
(plotext)."""

from __future__ import annotations

import plotext
from rich.text import Text
from textual.widget import Widget

COLORS = {"held-out": "green", "BFCL": "magenta"}
TICKS = {0.0: "base", 0.5: "warm"}  # the base model and the SFT warm start, before round 1


class AccuracyPlot(Widget):
    """Accuracy (%) per round, one line per suite, drawn with plotext at the widget's size; the base
    model and the warm start, where measured, are the first points ("base", "warm")."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: dict[str, list[tuple[float, float]]] = {}

    def show(self, series: dict[str, list[tuple[float, float]]]) -> None:
        if series != self.series:
            self.series = {k: list(v) for k, v in series.items()}
            self.refresh()

    def render(self) -> Text:
        plotext.clf()
        plotext.plotsize(max(self.size.width, 20), max(self.size.height, 5))
        plotext.theme("clear")
        plotext.title("Accuracy per round (%)")
        points = [p for v in self.series.values() for p in v]
        if points:
            for name, values in self.series.items():
                if values:
                    xs, ys = zip(*values)
                    plotext.plot(list(xs), list(ys), marker="dot", color=COLORS.get(name, "white"), label=name)
            rounds = sorted({x for x, _ in points})
            plotext.xticks(rounds, [TICKS.get(r, str(int(r))) for r in rounds])
            plotext.xlim(min(rounds) - 0.5, max(rounds) + 0.5)
            plotext.xlabel("round")
        else:
            plotext.text("no round evaluated yet", x=0.5, y=50, alignment="center")
            plotext.xlim(0, 1)
            plotext.xticks([])
            plotext.yticks([])
        plotext.ylim(0, 100)
        return Text.from_ansi(plotext.build())
