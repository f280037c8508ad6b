"""The review screen: the verdicts of the round at the gate; accept, override with the other
answer and drop change the database; an override made with `looptool review` shows without
leaving the screen; a person's decision kept from an earlier round says so; resume runs the review
command as the loop process."""

from __future__ import annotations

import sys

import pytest
from textual.widgets import Static

from typer.testing import CliRunner

from looptool.cli import app as cli_app
from looptool.config import DB_FILE
from looptool.schema import Verdict
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


@pytest.mark.slow
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


@pytest.mark.slow
async def test_an_override_from_the_command_line_shows_on_the_open_screen(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        blamed = next(r["verdict"].sample_id for r in screen.data.rows if r["verdict"].verdict == "PRED_WRONG")
        await select(pilot, blamed)
        result = CliRunner().invoke(cli_app, ["review", "-w", str(tui_ws), "--override", f"{blamed[:8]}=BOTH_WRONG"])
        assert result.exit_code == 0, result.output
        table = screen.query_one(VerdictTable)
        await wait_for(pilot, lambda: str(table.get_row(blamed)[2]) == "BOTH_WRONG")  # the override column
        assert app.screen is screen  # read again in place, not by leaving and coming back
        assert "your override BOTH_WRONG" in str(screen.query_one("#review-rationale", Static).render())


async def test_a_kept_decision_says_it_is_a_persons(tui_ws, ids):
    with Store.open(tui_ws / DB_FILE) as store:
        store.upsert_verdict(Verdict(sample_id=ids["expanded"], round=2, verdict="PRED_WRONG", basis="person",
                                     rationale="a person decided PRED_WRONG on this label (version 1) in round 1: "
                                     "the decision is kept, no judge asked"))
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await select(pilot, ids["expanded"])
        shown = str(app.screen.query_one("#review-rationale", Static).render())
        assert "a person's earlier decision, kept (no judge asked): PRED_WRONG" in shown
        assert "in round 1" in shown


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
