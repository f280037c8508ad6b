"""The seed dialogues: id, status, scenario, messages and samples; the row key is the id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from looptool.tui.widgets.column_table import ColumnTable


class DialogueList(ColumnTable):
    """Dialogue headers to pick one for the trace inspector."""

    COLUMNS = (("dialogue", None), ("status", None), ("scenario", None), ("msgs", None))

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def show(self, rows: Sequence[dict[str, Any]], selected: str | None = None) -> None:
        self.clear_rows()
        for r in rows:
            cells = (r["id"], r["status"], r["scenario"] or "-", str(r["n_messages"]))
            self.add_row(*(Text(c) for c in cells), key=r["id"])
        if selected is not None:
            ids = [r["id"] for r in rows]
            if selected in ids:
                self.move_cursor(row=ids.index(selected))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
