"""Every screen, reached by its key and by the command palette; a sample's detail and its trace
opened from the sample browser; back again with escape."""

from __future__ import annotations

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from looptool.tui.screens.config import ConfigScreen
from looptool.tui.screens.dashboard import DashboardScreen
from looptool.tui.screens.review import ReviewScreen
from looptool.tui.screens.sample_detail import SampleDetailScreen
from looptool.tui.widgets.agent_calls import AgentCallList
from looptool.tui.screens.samples import SamplesScreen
from looptool.tui.screens.trace import TraceScreen
from looptool.tui.widgets.endpoint_health import EndpointHealth
from looptool.tui.widgets.rounds_table import RoundsTable
from looptool.tui.widgets.sample_table import SampleTable
from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio

SCREENS = {"1": DashboardScreen, "2": SamplesScreen, "3": TraceScreen, "4": ReviewScreen, "5": ConfigScreen}


@pytest.mark.slow
async def test_every_screen_by_key(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.query_one(RoundsTable).stage_of(2) == "verify"
        for key, kind in [*SCREENS.items(), ("1", DashboardScreen)]:
            await pilot.press(key)
            await wait_for(pilot, lambda: isinstance(app.screen, kind))  # noqa: B023
        await pilot.press("5")
        await pilot.pause()
        health = app.screen.query_one(EndpointHealth)
        await wait_for(pilot, lambda: health.row_count and health.health_of("policy") != "checking…")
        assert health.health_of("policy") == "stopped"  # managed, and no server started


async def test_the_widest_round_rows_fit_120_columns(tui_ws):
    from looptool.config import DB_FILE
    from looptool.store import Store

    with Store.open(tui_ws / DB_FILE) as store:  # the widest cells a round shows, as a big run has them
        info = store.get_round(2)
        metrics = info.metrics.updated(composition={"corrected": 120, "error": 340, "both_ok": 0, "boundary": 80,
                                                    "expanded": 510, "fresh_seed": 200},
                                       probe={"mastered": 1000, "boundary": 1000, "failed": 1000},
                                       expansion={"kept": 500, "rejected": 520}, stage_seconds={"train": 4000.0},
                                       eval={"heldout": 0.123, "bfcl": {"all": 0.456}})
        store.upsert_round(info.model_copy(update={"stage": "evaluate", "metrics": metrics}))
        for n in range(3, 13):  # more rounds than the table has lines: a scrollbar takes a column
            store.upsert_round(info.model_copy(update={"n": n, "status": "done", "stage": "done", "metrics": metrics}))
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RoundsTable)
        await wait_for(pilot, lambda: table.stage_of(2) == "evaluate")
        assert table.virtual_size.width <= table.scrollable_content_region.width, "rounds table wider than 120 columns"


@pytest.mark.slow
async def test_every_screen_by_command_palette(tui_ws):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        # Fuzzy search: "go samp" finds "Go to samples" (few keys: each is a new search).
        for title, kind in (("go samp", SamplesScreen), ("go trac", TraceScreen), ("go revi", ReviewScreen),
                            ("go conf", ConfigScreen), ("go dash", DashboardScreen)):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*title)
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette)
                           and app.screen.query_one(CommandList).option_count > 0)
            await pilot.press("down", "enter")  # the best match is first
            await wait_for(pilot, lambda: isinstance(app.screen, kind))  # noqa: B023


@pytest.mark.slow
async def test_open_sample_detail_and_its_trace_from_the_browser(tui_ws, ids):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"Oslo?")
        table = app.screen.query_one(SampleTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("escape")  # back to the table
        assert table.selected_id == ids["oslo"]
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TraceScreen) and app.screen.dialogue_id == "d_weather"
        await wait_for(pilot, lambda: app.screen.shown is not None)
        assert [t["status"] for t in app.screen.shown.traces].count("error") == 1  # the rejected turn
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, SamplesScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SampleDetailScreen) and app.screen.sample_id == ids["oslo"]
        await wait_for(pilot, lambda: app.screen.record is not None)
        assert [p.category for p in app.screen.record.probes] == ["mastered", "mastered"]
        await pilot.press("t")  # detail -> trace -> back -> back
        await settle(pilot)
        assert isinstance(app.screen, TraceScreen)
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, SamplesScreen)


@pytest.mark.slow
async def test_sample_detail_shows_history_verdicts_and_expansions(tui_ws, ids):
    app = make_app(tui_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_sample(ids["error_parent"])
        await settle(pilot)
        record = app.screen.record
        assert [v.verdict for v in record.verdicts] == ["PRED_WRONG"]
        assert [(e["status"], e["sample_id"]) for e in record.expansions] == [("kept", ids["expanded"]),
                                                                              ("rejected", None)]
        # The judge's and the expander's calls, by the verdict and the expansion attempt they were made for.
        shown = app.screen.query_one(AgentCallList).groups
        assert [g.title for g in shown] == ["verdict · round 1", "expansion · round 1 · slot 0 · persona · kept",
                                            "expansion · round 1 · slot 1 · values · rejected"]
        assert [(c["call_key"], c["status"]) for c in shown[2].calls] == [("expand.a0", "error"), ("expand.a1", "ok"),
                                                                          ("check.a0", "ok")]
        assert shown[2].calls[0]["error"].startswith("expander: the answer hit max_tokens")
        app.open_sample(ids["by_rule"])
        await settle(pilot)
        assert [(v.verdict, v.basis) for v in app.screen.record.verdicts] == [("PRED_WRONG", "rule"),
                                                                              ("PRED_WRONG", "judge")]
        assert app.screen.query_one(AgentCallList).groups == ()  # no judge asked, no expansion traced
        app.open_sample(ids["oslo"])
        await settle(pilot)
        assert app.screen.record.history == []


@pytest.mark.slow
async def test_a_fresh_workspace_renders_every_screen(workspace):
    from textual.widgets import Static

    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(RoundsTable).row_count == 0
        for key in "2345":
            await pilot.press(key)
            await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert "no verdicts yet" in str(app.screen.query_one("#review-banner", Static).render())
        await pilot.press("2")
        await settle(pilot)
        assert app.screen.query_one(SampleTable).row_count == 0
