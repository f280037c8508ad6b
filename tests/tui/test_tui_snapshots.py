"""Screenshots (SVG) of the main screens at 120x40 on the fixture workspace, compared with the
committed ones in tests/tui/snapshots/. After an intended change of the UI, write them anew with

    LOOPTOOL_UPDATE_SNAPSHOTS=1 python -m pytest tests/tui/test_tui_snapshots.py

and look at the new SVGs before committing them. A missing snapshot fails (it is never skipped).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).with_name("snapshots")
UPDATE = os.environ.get("LOOPTOOL_UPDATE_SNAPSHOTS") == "1"


async def _ready(pilot, screen_name: str, ids: dict[str, str]) -> None:
    app = pilot.app
    if screen_name == "sample_detail":
        await pilot.press("2")
        await settle(pilot)
        app.open_sample(ids["error_parent"])
    elif screen_name == "trace":
        await pilot.press("3")
    else:
        await pilot.press({"dashboard": "1", "samples": "2", "review": "4", "config": "5"}[screen_name])
    await settle(pilot)
    if screen_name == "trace":
        await wait_for(pilot, lambda: app.screen.shown is not None)
    if screen_name == "config":
        from looptool.tui.widgets.endpoint_health import EndpointHealth

        health = app.screen.query_one(EndpointHealth)
        await wait_for(pilot, lambda: health.row_count and health.health_of("policy") != "checking…")
    if screen_name == "dashboard":
        await wait_for(pilot, lambda: app.screen.data is not None and app.review_round == 2)
    await settle(pilot)


@pytest.mark.parametrize("screen_name", ["dashboard", "samples", "trace", "sample_detail", "review", "config"])
async def test_screen_snapshot(tui_ws, ids, screen_name, tmp_path):
    app = make_app(tui_ws, poll_interval=60)  # one read at start: nothing moves while the picture is taken
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, screen_name, ids)
        svg = app.export_screenshot(title=f"LoopTool {screen_name}")
    expected = SNAPSHOTS / f"{screen_name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg, encoding="utf-8")
        return
    assert expected.is_file(), f"no snapshot {expected.name}: run with LOOPTOOL_UPDATE_SNAPSHOTS=1 to write it"
    if svg != expected.read_text(encoding="utf-8"):
        actual = tmp_path / f"{screen_name}.actual.svg"
        actual.write_text(svg, encoding="utf-8")
        pytest.fail(f"{screen_name} differs from {expected} (now: {actual}); if the change is intended, run with "
                    "LOOPTOOL_UPDATE_SNAPSHOTS=1")
