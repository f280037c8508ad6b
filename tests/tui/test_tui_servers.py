"""Stopping the loop from the TUI (x) says which of the workspace's vLLM servers it left running
(a fake loop and a fake merged-policy server: no vLLM)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from looptool.serving import server
from tests.fake_servers import fake_servers
from tests.tui.conftest import make_app, settle, wait_for

pytestmark = pytest.mark.anyio

FAKE_LOOP = Path(__file__).with_name("fake_loop.py")


async def test_stopping_the_loop_names_the_servers_it_left_running(tui_ws, monkeypatch):
    monkeypatch.setattr(server, "_healthy", lambda info, timeout=2.0: True)
    app = make_app(tui_ws, loop_command=[sys.executable, str(FAKE_LOOP), str(tui_ws), "200"])
    with fake_servers(tui_ws, [str(tui_ws / "merged" / "policy-round-3")]) as (merged,):
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("s")
            assert app.loop_process.running
            await pilot.press("x")
            await wait_for(pilot, lambda: not app.loop_process.running, timeout=15)
            await wait_for(pilot, lambda: any("loop stopped" in n.message for n in app._notifications))
            said = next(n.message for n in app._notifications if "loop stopped" in n.message)
            assert f"left running: policy-round-3 (pid {merged.pid}, port {merged.port})" in said
            assert "the policy with the round-3 adapter merged in" in said
            assert f"'looptool serve stop -w {tui_ws}' stops them" in said
