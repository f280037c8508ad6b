"""One page of samples: id, round added, origin, scenario, split, active, label, latest probe
category and verdict. The row key is the sample id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from looptool.display import label_summary, short
from looptool.tui.widgets.column_table import ColumnTable

# Widths fit 120 columns with the scrollbar; the label is cut to its column.
SAMPLE_COLUMNS = (("sample", 18), ("rnd", 3), ("origin", 9), ("scenario", 14), ("split", 7), ("act", 3), ("v", 2),
           ("label", 23), ("probe", 8), ("verdict", 11))


def scenario_cell(scenario: str | None) -> str:
    """The scenario in 14 columns: templated ones as "tpl single" and so on."""
    if not scenario:
        return "-"
    if scenario.startswith("templated_"):
        scenario = "tpl " + scenario.removeprefix("templated_")
    return short(scenario, 14)


class SampleTable(ColumnTable):
    """The sample browser's table."""

    COLUMNS = SAMPLE_COLUMNS

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def show(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show a page of samples; the cursor stays on the sample it was on, if it is still there."""
        keep = self.selected_id
        self.clear_rows()
        for r in rows:
            # Text, not str: a str cell is read as markup, and "[f(x=1)]" would vanish as a tag.
            cells = (r["id"], str(r["round_added"]), r["origin"], scenario_cell(r["scenario"]), r["split"],
                     "yes" if r["active"] else "no", str(r["label_version"]), label_summary(r["label"], 23),
                     r["category"] or "-", r["verdict"] or "-")
            self.add_row(*(Text(c) for c in cells), key=r["id"])
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
