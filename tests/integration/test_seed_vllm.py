"""Seed dialogues with the embedded model on a real vLLM CPU server: a run killed with SIGKILL
mid-way and resumed, then the data checked row by row, and the dialogue views."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config
from looptool.schema import ToolSpec
from looptool.serving.client import resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.store import Store
from looptool.tools_sim.validate import argument_errors

pytestmark = pytest.mark.slow

TOOLS = {
    "weather": [
        {"name": "get_weather", "description": "Current weather in a city.",
         "parameters": {"type": "object", "properties": {
             "city": {"type": "string", "description": "City name"},
             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
             "required": ["city"]}},
        {"name": "get_forecast", "description": "Weather forecast for the next days.",
         "parameters": {"type": "object", "properties": {
             "city": {"type": "string", "description": "City name"},
             "days": {"type": "integer", "minimum": 1, "maximum": 7, "description": "Number of days"}},
             "required": ["city", "days"]}},
        {"name": "air_quality", "description": "Air quality index of a city.",
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                        "required": ["city"]}},
    ],
    "travel": [
        {"name": "search_flights", "description": "Find flights between two airports on a date.",
         "parameters": {"type": "object", "properties": {
             "origin": {"type": "string", "description": "IATA code of the departure airport"},
             "destination": {"type": "string", "description": "IATA code of the arrival airport"},
             "date": {"type": "string", "format": "date", "description": "Departure date"}},
             "required": ["origin", "destination", "date"]}},
        {"name": "book_hotel", "description": "Book a hotel room.",
         "parameters": {"type": "object", "properties": {
             "city": {"type": "string", "description": "City"},
             "nights": {"type": "integer", "minimum": 1, "maximum": 30, "description": "Number of nights"},
             "guests": {"type": "integer", "minimum": 1, "maximum": 8, "description": "Number of guests"}},
             "required": ["city", "nights"]}},
        {"name": "convert_currency", "description": "Convert an amount between currencies.",
         "parameters": {"type": "object", "properties": {
             "amount": {"type": "number", "minimum": 0, "description": "Amount to convert"},
             "to": {"type": "string", "enum": ["EUR", "USD", "GBP", "JPY"], "description": "Target currency"}},
             "required": ["amount", "to"]}},
    ],
}  # fmt: skip
N, CONCURRENCY = 8, 4


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A workspace with the tools above and a running server; seeding is left to the tests."""
    ws = tmp_path_factory.mktemp("seed") / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    config = load_config(ws)
    with Store.open(ws / "looptool.db") as store:
        for domain, specs in TOOLS.items():
            store.upsert_tools([ToolSpec.model_validate(s) for s in specs], domain=domain, source="test")
    resolve_endpoint(config, "generator", ws, log=lambda *_: None)  # the server the seed runs reuse
    yield ws
    ServerManager(ws, config.serving).stop_all()


def _seed_command(ws) -> list[str]:
    return [sys.executable, "-c", "from looptool.cli import app; app()", "seed", "-w", str(ws),
            "--n", str(N), "--concurrency", str(CONCURRENCY)]  # fmt: skip


def _finished(db) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM dialogues WHERE status IN ('done', 'dropped')").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_seed_killed_mid_run_resumes_without_loss_or_duplicates(seeded):
    ws, db = seeded, seeded / "looptool.db"
    proc = subprocess.Popen(_seed_command(ws), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Kill once the first dialogue has finished and others are still in flight.
    deadline = time.monotonic() + 600
    while _finished(db) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = _finished(db)
    assert 1 <= finished_before < N, "the kill must land mid-run"
    with Store.open(db) as store:
        before = {r["id"]: (r["status"], r["n_samples"]) for r in store.dialogue_rows() if r["status"] in ("done", "dropped")}

    result = subprocess.run(_seed_command(ws), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{finished_before} already finished" in result.stdout

    with Store.open(db) as store:
        rows = store.dialogue_rows()
        assert len(rows) == N and {r["status"] for r in rows} <= {"done", "dropped"}
        for dialogue_id, (status, n_samples) in before.items():  # finished dialogues are kept as they were
            row = next(r for r in rows if r["id"] == dialogue_id)
            assert (row["status"], row["n_samples"]) == (status, n_samples)
        done = [r for r in rows if r["status"] == "done"]
        assert len(done) >= N // 2, [r["error"] for r in rows]
        for r in rows:
            idx = [m["idx"] for m in store.message_rows(r["id"])]
            assert idx == list(range(len(idx)))
            traces = store.traces(r["id"])
            assert traces and all(t["model"] for t in traces if t["raw"] is not None)
            if r["status"] == "dropped":
                assert r["n_samples"] == 0 and r["error"]
        samples = list(store.iter_samples())
        assert samples and {s.dialogue_id for s in samples} == {r["id"] for r in done}
        for s in samples:
            by_name = {t.name: t for t in s.tools}
            assert s.messages[0].role == "system" and "<tool_call>" in s.messages[0].content
            for call in s.label.calls:
                assert argument_errors(by_name[call.name], call) == []
        real = [t for r in done for t in store.traces(r["id"]) if t["latency_ms"] is not None]
        assert all(t["prompt_tokens"] > 0 and t["completion_tokens"] > 0 for t in real)
        for r in done:  # tool results are JSON within the tool's output schema (or an error object)
            for m in store.messages(r["id"]):
                if m.role == "tool":
                    json.loads(m.content)

    again = subprocess.run(_seed_command(ws), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{N} already finished" in again.stdout


def test_dialogue_views_render_plan_transcript_and_trace(seeded):
    runner = CliRunner()
    listing = runner.invoke(app, ["dialogues", "list", "-w", str(seeded), "--status", "done"])
    assert listing.exit_code == 0, listing.output
    first = listing.output.splitlines()[1].split()[0]
    shown = runner.invoke(app, ["dialogues", "show", first[:10], "-w", str(seeded), "--trace"])
    assert shown.exit_code == 0, shown.output
    for part in ("scenario:", "plan:", "transcript:", "USER", "ASSISTANT", "samples:", "agent calls:", "planner", "ms"):
        assert part in shown.output
