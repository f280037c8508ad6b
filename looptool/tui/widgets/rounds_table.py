"""The rounds of the loop as a table: status, stage, timings, data composition, probe categories,
verdicts, expansion yield, accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from looptool.schema import Round
from looptool.tui.data import ROUND_COLUMNS, round_cells


class RoundsTable(DataTable):
    """One row per round; rows are rewritten only when their cells change."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: list[tuple[str, ...]] = []

    def on_mount(self) -> None:
        self._columns_added()

    def _columns_added(self) -> None:
        # The first read may arrive before on_mount: rows added before their columns would leave
        # every column as wide as its header, cutting the cells off.
        if not self.columns:
            self.add_columns(*ROUND_COLUMNS)

    def show(self, rounds: Sequence[Round], verdicts: dict[int, dict[str, int]]) -> None:
        rows = [round_cells(r, verdicts.get(r.n)) for r in rounds]
        if rows == self._shown:
            return
        self._columns_added()
        row = self.cursor_row
        self.clear()
        for cells in rows:
            self.add_row(*(Text(c) for c in cells), key=cells[0])
        self._shown = rows
        if rows:
            self.move_cursor(row=min(row, len(rows) - 1))

    def state_of(self, round: int) -> tuple[str, str] | None:
        """The (status, stage) shown for a round (what tests, benchmarks and people read)."""
        return next(((cells[1], cells[2]) for cells in self._shown if cells[0] == str(round)), None)

    def stage_of(self, round: int) -> str | None:
        """The stage shown for a round."""
        state = self.state_of(round)
        return None if state is None else state[1]
