"""The sample browser filters in the database and counts what matches."""

from __future__ import annotations

import pytest
from textual.widgets import Select, Static

from looptool.tui.widgets.sample_table import SampleTable
from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio


def counts_text(app) -> str:
    return str(app.screen.query_one("#sample-counts", Static).render())


async def open_samples(pilot) -> SampleTable:
    """Go to the sample browser and wait for its first page."""
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one(SampleTable)


@pytest.mark.slow
async def test_filter_by_origin_and_by_search(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_samples(pilot)
        assert table.row_count == 14 and "14 matching of 14 samples" in counts_text(app)
        app.screen.query_one("#f-origin", Select).value = "expanded"
        await wait_for(pilot, lambda: table.row_count == 1)
        assert "1 matching of 14" in counts_text(app)
        app.screen.query_one("#f-origin", Select).value = "seed"
        await wait_for(pilot, lambda: table.row_count == 12)
        await pilot.press("slash", *"weather in")
        await wait_for(pilot, lambda: table.row_count == 5)  # Oslo, 2 parallel, 2 held-out
        await pilot.press(*" paris")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert "1 matching" in counts_text(app)


@pytest.mark.slow
async def test_filter_by_split_and_search_origin_and_scenario(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_samples(pilot)
        app.screen.query_one("#f-split", Select).value = "heldout"
        await wait_for(pilot, lambda: table.row_count == 2)  # the two held-out weather samples
        assert "2 matching of 14" in counts_text(app)
        app.screen.query_one("#f-split", Select).value = "train"
        await wait_for(pilot, lambda: table.row_count == 12)
        await pilot.press("slash", *"corrected")  # an origin: in no message or label
        await wait_for(pilot, lambda: table.row_count == 1)
        app.screen.query_one("#f-search").value = "parallel"  # a scenario
        await wait_for(pilot, lambda: table.row_count == 2)


@pytest.mark.slow
async def test_filter_by_probe_category_verdict_and_tool(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_samples(pilot)
        screen = app.screen
        screen.query_one("#f-category", Select).value = "failed"
        await wait_for(pilot, lambda: table.row_count == 6)  # failed in round 1 or 2
        screen.query_one("#f-verdict", Select).value = "PRED_WRONG"
        await wait_for(pilot, lambda: table.row_count == 2)
        screen.query_one("#f-category", Select).value = Select.NULL
        screen.query_one("#f-verdict", Select).value = Select.NULL
        await pilot.click("#f-tool")
        await pilot.press(*"book_table")
        await wait_for(pilot, lambda: table.row_count == 4)


@pytest.mark.slow
async def test_back_from_a_sample_the_cursor_stays_on_it(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_samples(pilot)
        await pilot.press("down", "down", "down")
        chosen = table.selected_id
        assert table.cursor_row == 3
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.sub_title == f"sample {chosen}"
        await pilot.press("escape")
        await settle(pilot)  # the page is read again on the way back
        assert app.screen.query_one(SampleTable) is table and table.selected_id == chosen and table.cursor_row == 3
