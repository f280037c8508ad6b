"""A DataTable whose columns are declared on the class and exist before its first rows."""

from __future__ import annotations

from typing import ClassVar

from textual.widgets import DataTable


class ColumnTable(DataTable):
    """Declare ``COLUMNS`` as (label, width or None for as wide as the content); call
    ``clear_rows`` before filling.

    A screen's worker may deliver the first rows before the table has handled its own Mount
    event (they are separate message queues). Rows added before their columns leave every column
    as wide as its header, cutting the cells off, so the columns are added on whichever comes
    first: mounting, or the first fill."""

    COLUMNS: ClassVar[tuple[tuple[str, int | None], ...]] = ()

    def on_mount(self) -> None:
        self.add_declared_columns()

    def add_declared_columns(self) -> None:
        if not self.columns:
            for label, width in self.COLUMNS:
                self.add_column(label, width=width)

    def clear_rows(self) -> None:
        """Remove every row, keeping (or first adding) the columns."""
        self.add_declared_columns()
        self.clear()
