"""Tables filled before they handle their own Mount event keep columns as wide as their cells.

A screen's worker can post the first rows before the table's Mount is handled (separate message
queues); rows added before the columns once left every column as wide as its header."""

from __future__ import annotations

import pytest
from textual.app import App

from looptool.tui.widgets.dialogue_list import DialogueList

pytestmark = pytest.mark.anyio

ROWS = [{"id": "d_weather_in_oslo", "status": "done", "scenario": "single_call_scenario", "n_messages": 4}]


class FillsBeforeMount(App):
    def compose(self):
        table = DialogueList()
        # Filled while being composed: before its Mount event can have been handled.
        table.show(ROWS)
        yield table


async def test_rows_before_mount_get_full_width_columns():
    app = FillsBeforeMount()
    async with app.run_test(size=(100, 10)) as pilot:
        await pilot.pause()
        table = app.query_one(DialogueList)
        widths = [c.get_render_width(table) - 2 * table.cell_padding for c in table.ordered_columns]
        assert [c.label.plain for c in table.ordered_columns] == ["dialogue", "status", "scenario", "msgs"]
        assert widths[0] >= len("d_weather_in_oslo") and widths[2] >= len("single_call_scenario"), widths
        assert table.row_count == 1
