"""Shared fixtures. Slow tests (real vLLM server, real training) carry `@pytest.mark.slow`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from tests.fakes import FakeOpenAI


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workspace(tmp_path: Path, runner: CliRunner) -> Path:
    """A fresh workspace made by `looptool init`."""
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def fake_openai():
    """A scripted OpenAI-compatible server on loopback (see tests/fakes.py)."""
    server = FakeOpenAI()
    yield server
    server.close()
