"""The rounds of the loop as a table: status, stage, timings, data composition, probe categories,
verdicts, expansion yield, accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from looptool.schema import Round
from looptool.tui.data import ROUND_COLUMNS, round_cells
from looptool.tui.widgets.column_table import ColumnTable


class RoundsTable(ColumnTable):
    """One row per round; rows are rewritten only when their cells change."""

    COLUMNS = tuple((label, None) for label in ROUND_COLUMNS)

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: list[tuple[str, ...]] = []

    def show(self, rounds: Sequence[Round], verdicts: dict[int, dict[str, int]], *, stopped: bool = False,
             waiting: int | None = None) -> None:
        """`stopped`: no loop runs, so a round stored as running shows as stopped -- unless it is
        the round `waiting` at the review gate, which waits for a person, not for a loop."""
        rows = [round_cells(r, verdicts.get(r.n), stopped=stopped and r.n != waiting) for r in rounds]
        if rows == self._shown:
            return
        row = self.cursor_row
        self.clear_rows()
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
