"""Screenshots (SVG) of the main screens at 120x40 on the fixture workspace, compared with the
committed ones in tests/tui/snapshots/. After an intended change of the UI, write them anew with

    LOOPTOOL_UPDATE_SNAPSHOTS=1 python -m pytest tests/tui/test_tui_snapshots.py

and look at the new SVGs before committing them. A missing snapshot fails (it is never skipped).

What is compared is the screen's text, cell by cell (every character where it stands), read back
from the SVG: that catches any change of content or layout, while a new patch release of Textual
or Rich that only renames the SVG's style classes or shifts a colour does not fail the suite.
"""

from __future__ import annotations

import difflib
import html
import os
import re
from pathlib import Path

import pytest

from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).with_name("snapshots")
UPDATE = os.environ.get("LOOPTOOL_UPDATE_SNAPSHOTS") == "1"
# One text segment of Rich's SVG export: its x and y (pixels) and its characters.
SEGMENT = re.compile(r'<text class="[^"]*-r\d+" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>')
CELL_WIDTH = 12.2  # pixels per terminal column in Rich's SVG export


def screen_lines(svg: str) -> list[str]:
    """The terminal's text, line by line, from an SVG screenshot."""
    rows: dict[float, dict[int, str]] = {}
    for x, y, text in SEGMENT.findall(svg):
        rows.setdefault(float(y), {})[round(float(x) / CELL_WIDTH)] = html.unescape(text).replace("\xa0", " ")
    lines = []
    for y in sorted(rows):
        line = ""
        for column, text in sorted(rows[y].items()):
            line = line.ljust(column) + text
        lines.append(line.rstrip())
    return lines


def tables_measured(app) -> bool:
    """Whether every table on the screen has measured its rows. A DataTable sizes its columns to
    new rows only when its own message queue is idle; a picture taken before that (a busy CI
    machine) shows every column as wide as its header."""
    from textual.widgets import DataTable

    return all(not (t._require_update_dimensions or t._new_rows or t._updated_cells)
               for t in app.screen.query(DataTable))


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
    await wait_for(pilot, lambda: tables_measured(app))


@pytest.mark.slow
@pytest.mark.parametrize("screen_name", ["dashboard", "samples", "trace", "sample_detail", "review", "config"])
async def test_screen_snapshot(tui_ws, ids, screen_name, tmp_path):
    expected = SNAPSHOTS / f"{screen_name}.svg"
    assert UPDATE or expected.is_file(), f"no snapshot {expected.name}: run with LOOPTOOL_UPDATE_SNAPSHOTS=1 to write it"
    before = [] if UPDATE else screen_lines(expected.read_text(encoding="utf-8"))
    app = make_app(tui_ws, poll_interval=60)  # one read at start: nothing moves while the picture is taken
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, screen_name, ids)
        svg = app.export_screenshot(title=f"LoopTool {screen_name}")
        # A table that has measured its rows may not have been painted since (a busy machine): the
        # picture then shows its columns at their headers' width. The content is fixed, so a
        # picture that differs is taken again after a repaint; a real change differs every time.
        for _ in range(3):
            if UPDATE or screen_lines(svg) == before:
                break
            app.screen.refresh(layout=True)
            await pilot.pause(0.5)
            await wait_for(pilot, lambda: tables_measured(app))
            svg = app.export_screenshot(title=f"LoopTool {screen_name}")
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg, encoding="utf-8")
        return
    now = screen_lines(svg)
    assert len(now) >= 38, f"only {len(now)} lines read back from the screenshot"  # the reader itself works
    if now != before:
        actual = tmp_path / f"{screen_name}.actual.svg"
        actual.write_text(svg, encoding="utf-8")
        diff = "\n".join(difflib.unified_diff(before, now, "snapshot", "now", lineterm="", n=1))
        pytest.fail(f"{screen_name} differs from {expected} (now: {actual}); if the change is intended, run with "
                    f"LOOPTOOL_UPDATE_SNAPSHOTS=1\n{diff}")
