"""Shared fixtures, and the rule that keeps the fast subset fast.

Slow tests carry `@pytest.mark.slow`: a real vLLM server, real weights or training, child processes,
or seconds of work. `make test-unit` runs the rest, from tests/unit and tests/tui only (collecting
tests/integration would import torch in every worker), so a test there must be marked slow.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import typer.testing
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


# Typer builds the whole click command tree (every command's signature) on each `invoke`: 70 ms of
# CPU, hundreds of times a run. The tree of an app is the same each time: built once per app.
typer.testing._get_command = functools.cache(typer.testing._get_command)


INTEGRATION = Path(__file__).parent / "integration"


# The modules that take longest in `make test` (its --durations on 2 cores), longest first. They
# start first, so that at the end no worker runs one of them alone while the other waits.
LONGEST_FIRST = ("test_eval_vllm", "test_seed_vllm", "test_export_vllm", "test_tools", "test_seed_resume",
                 "test_loop_kill", "test_eval_multi_turn_vllm", "test_training_scale", "test_endpoint_pool_vllm",
                 "test_training_trl", "test_serving")


def pytest_collection_modifyitems(config, items):
    """A test under tests/integration without the slow mark would never run in the fast subset and
    would look fast where it is not: refuse it. The longest modules go first (a stable sort: the
    rest keep their order)."""
    unmarked = [item.nodeid for item in items
                if INTEGRATION in item.path.parents and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"tests under tests/integration must be marked slow: {', '.join(unmarked)}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
