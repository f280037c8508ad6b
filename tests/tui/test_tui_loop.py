"""The loop as a child process of the TUI (a fake, fast loop that only writes rows): start, pause
request, stop; a loop started elsewhere is seen and not started twice; and the dashboard showing another process's stage change within 2 seconds while a
writer hammers the database, with no "locked" error on screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from looptool.config import DB_FILE
from looptool.loop.control import pause_requested
from looptool.store import Store
from looptool.tui.widgets.event_log import EventLog
from looptool.tui.widgets.loop_status import LoopStatus
from looptool.tui.widgets.rounds_table import RoundsTable
from tests.scripted_loop import loop_running_elsewhere
from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio

FAKE_LOOP = Path(__file__).with_name("fake_loop.py")
HAMMER = Path(__file__).with_name("hammer_writer.py")


def screen_text(app) -> str:
    return app.export_screenshot()


@pytest.mark.slow
async def test_start_pause_and_stop_a_loop_process(tui_ws):
    app = make_app(tui_ws, loop_command=[sys.executable, str(FAKE_LOOP), str(tui_ws), "200"])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        rounds = app.screen.query_one(RoundsTable)
        await pilot.press("p")
        assert not pause_requested(tui_ws)  # no loop runs: nothing to pause
        await pilot.press("s")
        await wait_for(pilot, lambda: app.loop_process.running)
        await wait_for(pilot, lambda: rounds.stage_of(3) is not None, timeout=10)
        await wait_for(pilot, lambda: "round 3:" in "".join(line.text for line in app.screen.query_one(EventLog).lines))
        await pilot.press("p")
        assert pause_requested(tui_ws)
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.loop_process.running, timeout=15)
        assert app.loop_process.state().exit_code == -15  # SIGTERM
        with Store.open(tui_ws / DB_FILE) as store:
            last = store.get_round(3).stage  # the last stage the killed loop wrote
        await wait_for(pilot, lambda: rounds.stage_of(3) == last)  # the dashboard catches up ...
        await pilot.pause(0.6)
        assert rounds.stage_of(3) == last  # ... and nothing writes any more


@pytest.mark.slow
async def test_a_loop_started_elsewhere_is_shown_and_not_started_again(tui_ws):
    with loop_running_elsewhere(tui_ws) as holder:
        app = make_app(tui_ws, loop_command=[sys.executable, str(FAKE_LOOP), str(tui_ws), "200"])
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            status = app.screen.query_one(LoopStatus)
            await wait_for(pilot, lambda: f"started elsewhere (pid {holder.pid})" in str(status.render()))
            await pilot.press("s")
            await wait_for(pilot, lambda: any("started elsewhere" in n.message for n in app._notifications))
            assert not app.loop_process.running
            await pilot.press("p")
            assert pause_requested(tui_ws)  # a pause reaches any loop on the workspace


@pytest.mark.slow
async def test_dashboard_follows_another_process_within_two_seconds(tui_ws):
    app = make_app(tui_ws, poll_interval=0.5)
    hammer = subprocess.Popen([sys.executable, str(HAMMER), str(tui_ws), "300"])  # stopped below; long enough for a loaded machine
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            rounds = app.screen.query_one(RoundsTable)
            assert rounds.stage_of(2) == "verify"
            for stage in ("expand", "assemble", "evaluate"):
                changer = subprocess.run([sys.executable, str(HAMMER), str(tui_ws), "0", stage], check=True)
                assert changer.returncode == 0
                took = await wait_for(pilot, lambda: rounds.stage_of(2) == stage, timeout=2.0)  # noqa: B023
                assert took < 2.0
                assert "locked" not in screen_text(app).lower()
            assert hammer.poll() is None, "the writer should still be hammering"
    finally:
        hammer.terminate()
        hammer.wait(10)
