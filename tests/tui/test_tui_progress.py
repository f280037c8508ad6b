"""The dashboard says what is happening: the SFT warm start's steps while it runs (not an empty
GRPO bar), the key to press and the count while verdicts wait for review, a paused round as paused
and a round whose loop is gone as stopped; and s after the configured rounds says why nothing
starts and how to add rounds."""

from __future__ import annotations

import sys

import pytest
from textual.widgets import Label, ProgressBar

from looptool.config import DB_FILE, load_config
from looptool.schema import Round, RoundMetrics
from looptool.store import Store
from looptool.tui.widgets.loop_status import LoopStatus
from looptool.tui.widgets.rounds_table import RoundsTable
from tests.scripted_loop import loop_running_elsewhere
from tests.tui.conftest import make_app, settle, wait_for
from tests.tui.tui_workspace import ROUND2_VERIFY_STARTED

pytestmark = pytest.mark.anyio


def stage_text(app) -> str:
    return str(app.screen.query_one("#stage-label", Label).render())


def bar(app) -> ProgressBar:
    return app.screen.query_one("#stage-bar", ProgressBar)


def _round(ws, **fields) -> None:
    with Store.open(ws / DB_FILE) as store:
        info = store.get_round(fields["n"]) or Round(n=fields["n"])
        store.upsert_round(info.model_copy(update=fields))


@pytest.mark.slow
async def test_the_warm_start_shows_its_own_steps(workspace):
    sft_steps = load_config(workspace).train.sft_max_steps
    _round(workspace, n=1, status="running", stage="train", metrics=RoundMetrics(stage_started=ROUND2_VERIFY_STARTED))
    with loop_running_elsewhere(workspace):
        app = make_app(workspace)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            # No SFT step logged yet (the model loads): already the warm start, not "train 0/N".
            await wait_for(pilot, lambda: f"round 1 · warm start (SFT) · 0/{sft_steps} steps" in stage_text(app))
            with Store.open(workspace / DB_FILE) as store:
                for step in range(1, 13):
                    store.add_train_step(1, "sft", step, {"loss": 1.0 / step})
            await wait_for(pilot, lambda: f"round 1 · warm start (SFT) · 12/{sft_steps} steps" in stage_text(app))
            assert "min/step" in stage_text(app) or "steps/min" in stage_text(app)  # a rate, however fast
            assert bar(app).display and (bar(app).progress, bar(app).total) == (12, sft_steps)
            # The warm start done (its summary recorded), GRPO logs its steps: the train stage again.
            with Store.open(workspace / DB_FILE) as store:
                info = store.get_round(1)
                store.upsert_round(info.model_copy(update={"metrics": info.metrics.updated(sft={"steps": 12})}))
                store.add_train_step(1, "grpo", 1, {"reward": 0.5})
            await wait_for(pilot, lambda: stage_text(app).startswith("round 1 · train · 1"))
            assert "warm start" not in stage_text(app)


async def test_waiting_for_review_says_which_key_and_how_many_verdicts(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await wait_for(pilot, lambda: "waiting for review" in stage_text(app))
        assert stage_text(app) == "round 2 · verify · waiting for review: press 4 to review 3 verdicts"
        assert not bar(app).display
        status = str(app.screen.query_one(LoopStatus).render())
        assert "round 2 waits for review: press 4 to review 3 verdicts" in status


async def test_a_paused_round_shows_paused_and_one_without_its_loop_stopped(workspace):
    _round(workspace, n=1, status="paused", stage="train")
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        rounds = app.screen.query_one(RoundsTable)
        await wait_for(pilot, lambda: "paused" in stage_text(app))
        assert stage_text(app).startswith("round 1 · train (paused after it as asked")
        assert "running" not in stage_text(app) and not bar(app).display
        assert rounds.state_of(1) == ("paused", "train")
        _round(workspace, n=1, status="running", stage="probe")  # as a killed loop leaves it
        await wait_for(pilot, lambda: "probe" in stage_text(app))
        assert stage_text(app).startswith("round 1 · probe (stopped: no loop runs")
        assert rounds.state_of(1) == ("stopped", "probe")  # the table does not say running either


async def test_start_after_the_configured_rounds_says_why_and_how_to_add_rounds(workspace, tmp_path):
    rounds = load_config(workspace).loop.rounds
    for n in range(1, rounds + 1):
        _round(workspace, n=n, status="done", stage="done")
    marker = tmp_path / "started"
    app = make_app(workspace, loop_command=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: any("nothing to run" in n.message for n in app._notifications))
        (note,) = [n.message for n in app._notifications if "nothing to run" in n.message]
        assert f"the loop has done {rounds} rounds and [loop] rounds is {rounds}" in note
        assert f"set rounds = {rounds + 1}" in note and f"looptool loop --rounds {rounds + 1}" in note
        assert not app.loop_process.running and not marker.exists()
        # With a round more in the config, s starts the loop.
        config_path = workspace / "looptool.toml"
        config_path.write_text(config_path.read_text().replace(f"rounds = {rounds}\n", f"rounds = {rounds + 1}\n", 1))
        assert load_config(workspace).loop.rounds == rounds + 1
        await pilot.press("s")
        await wait_for(pilot, lambda: marker.exists(), timeout=10)
