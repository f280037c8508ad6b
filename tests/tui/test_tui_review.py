"""The review screen: the verdicts of the round at the gate; accept, override with the other
answer and drop change the database; resume runs the review command as the loop process."""

from __future__ import annotations

import sys

import pytest
from textual.widgets import Static

from looptool.config import DB_FILE
from looptool.store import Store
from looptool.tui.widgets.verdict_table import VerdictTable
from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio


def overrides(ws) -> dict[str, str | None]:
    with Store.open(ws / DB_FILE) as store:
        return {v.sample_id: v.human_override for v in store.verdicts(2)}


async def select(pilot, sample_id: str) -> None:
    table = pilot.app.screen.query_one(VerdictTable)
    table.move_cursor(row=table.get_row_index(sample_id))
    await pilot.pause()


async def test_accept_override_and_drop_change_the_database(tui_ws, ids):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert screen.data.round == 2 and screen.data.waiting
        assert "waits for review of round 2" in str(screen.query_one("#review-banner", Static).render())
        assert set(overrides(tui_ws).values()) == {None}
        table = screen.query_one(VerdictTable)
        assert table.row_count == 3

        # the judge blamed the label (LABEL_WRONG): the other answer keeps the label
        labelled = next(r["verdict"].sample_id for r in screen.data.rows if r["verdict"].verdict == "LABEL_WRONG")
        await select(pilot, labelled)
        await pilot.press("o")
        await wait_for(pilot, lambda: overrides(tui_ws)[labelled] == "PRED_WRONG")
        await pilot.press("o")  # and back: the judge's own verdict again, so no override
        await wait_for(pilot, lambda: overrides(tui_ws)[labelled] is None)

        # the judge blamed the prediction: the other answer takes the prediction
        blamed = next(r["verdict"].sample_id for r in screen.data.rows if r["verdict"].verdict == "PRED_WRONG")
        await select(pilot, blamed)
        await pilot.press("o")
        await wait_for(pilot, lambda: overrides(tui_ws)[blamed] == "LABEL_WRONG")
        await pilot.press("a")  # accept the judge after all
        await wait_for(pilot, lambda: overrides(tui_ws)[blamed] is None)

        await select(pilot, ids["expanded"])  # BOTH_OK
        await pilot.press("d")
        await wait_for(pilot, lambda: overrides(tui_ws)[ids["expanded"]] == "BOTH_WRONG")
        await wait_for(pilot, lambda: any(r["verdict"].human_override == "BOTH_WRONG" for r in app.screen.data.rows))
        assert overrides(tui_ws) == {labelled: None, blamed: None, ids["expanded"]: "BOTH_WRONG"}


async def test_resume_runs_the_review_command(tui_ws, tmp_path):
    marker = tmp_path / "resumed"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ok')"]
    app = make_app(tui_ws, review_command=command)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: not app.loop_process.running and marker.exists(), timeout=10)
        assert app.loop_process.state().what == "review --accept"
        assert app.loop_process.state().exit_code == 0
