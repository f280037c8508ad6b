"""Fixtures of the TUI tests: the fixture workspace (built once, copied for each test) and an app
on it with a fixed clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tui.tui_workspace import NOW, build


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Textual runs on asyncio


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    ws = tmp_path_factory.mktemp("tui-fixture") / "ws"
    ids = build(ws)
    return ws, ids


@pytest.fixture
def tui_ws(built_workspace, tmp_path) -> Path:
    """A fresh copy of the fixture workspace (tests may write to it)."""
    source, _ = built_workspace
    target = tmp_path / "ws"
    shutil.copytree(source, target)
    return target


@pytest.fixture
def ids(built_workspace) -> dict[str, str]:
    return built_workspace[1]


def make_app(ws: Path, **kwargs):
    from looptool.tui.app import LoopToolApp

    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("poll_interval", 0.2)
    return LoopToolApp(ws, **kwargs)


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and their messages land."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def wait_for(pilot, predicate, timeout: float = 5.0, step: float = 0.05) -> float:
    """Pause until predicate() holds; returns the seconds it took (fails the test past timeout)."""
    import time

    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(step)
    return time.monotonic() - started
