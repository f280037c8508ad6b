"""The judge's verdicts of a round for review: sample, the judge's verdict, a person's override,
the verdict that will apply, label, prediction and the judge's reasoning. The row key is the
sample id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from looptool.display import label_summary, short
from looptool.tui.widgets.column_table import ColumnTable

VERDICT_STYLES = {"LABEL_WRONG": "yellow", "PRED_WRONG": "cyan", "BOTH_OK": "green", "BOTH_WRONG": "red"}


class VerdictTable(ColumnTable):
    """One row per verdict; keeps the cursor on the same sample across reloads."""

    # The judge's reasoning is shown under the table, for the highlighted row.
    COLUMNS = (("sample", 18), ("judge", 11), ("override", 11), ("applies", 11), ("label", 28), ("prediction", 28))

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def show(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of {verdict: Verdict, label: Label | None, prediction: str}."""
        keep = self.selected_id
        self.clear_rows()
        for r in rows:
            v = r["verdict"]
            applies = v.effective
            self.add_row(  # Text, not str: "[f(x=1)]" in a str cell would be read as markup
                Text(v.sample_id), Text(v.verdict), Text(v.human_override or "-"),
                Text(applies, style=VERDICT_STYLES.get(applies, "")),
                Text(label_summary(r["label"], 28) if r["label"] is not None else "?"),
                Text(short(r["prediction"], 28)), key=v.sample_id)
        ids = [r["verdict"].sample_id for r in rows]
        if keep in ids:
            self.move_cursor(row=ids.index(keep))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
