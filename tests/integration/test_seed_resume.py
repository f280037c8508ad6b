"""`looptool seed` survives SIGKILL: a run killed again and again, then finished, stores exactly
the data of a run that was never interrupted.

Every role is an endpoint at the scripted fake server, which answers each request from its prompt
alone (and sleeps a little, so a run lasts a few seconds). Two workspaces get the same config and
tools: A is seeded in one go; B is started and killed with SIGKILL at random moments several times,
then run to completion. Their dialogues, messages, samples and agent traces must then be equal
(timestamps and latencies aside), and running the finished command again must change nothing.

Random kills rarely land in the narrowest window, between a step's saved writes and its
checkpoint, so a second test kills one dialogue there at every step, in turn.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from looptool.seed.scenarios import dialogue_id
from tests.fakes import FakeOpenAI, chat_reply, json_schema_responder

pytestmark = pytest.mark.slow

N = 24  # dialogues
CONCURRENCY = 4
REPLY_DELAY_S = 0.04  # per request: the run lasts seconds, so a kill can land mid-run
KILLS = 6
BROKEN_TOOL = "stock_price"  # its simulated results are never JSON: dialogues that call it are dropped
RNG_SEED = 20240611

CLI = [sys.executable, "-m", "looptool.cli"]


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


CITY = {"type": "string", "description": "City name."}
TOOLS = {
    "weather": [
        _tool("get_weather", "Current weather in a city.",
              {"city": CITY, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"]),
        _tool("get_forecast", "Daily forecast for a city.",
              {"city": CITY, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, ["city", "days"]),
        _tool("air_quality", "Air quality index of a city.",
              {"city": CITY,
               "pollutants": {"type": "array", "items": {"type": "string", "enum": ["pm25", "pm10", "o3"]}}},
              ["city"]),
    ],
    "travel": [
        _tool("search_flights", "Find flights between two airports on a date.",
              {"origin": {"type": "string"}, "destination": {"type": "string"},
               "date": {"type": "string", "format": "date"},
               "cabin": {"type": "string", "enum": ["economy", "business"]}},
              ["origin", "destination", "date"]),
        _tool("book_hotel", "Book a hotel room.",
              {"city": CITY, "nights": {"type": "integer", "minimum": 1, "maximum": 30},
               "guests": {"type": "integer", "minimum": 1, "maximum": 6}}, ["city", "nights"]),
        _tool("list_attractions", "Sights of a city in some categories.",
              {"city": CITY, "categories": {"type": "array", "items": {"type": "string"}},
               "limit": {"type": "integer", "minimum": 1, "maximum": 20}}, ["city", "categories"]),
    ],
    "finance": [
        _tool("convert_currency", "Convert an amount between currencies.",
              {"amount": {"type": "number", "minimum": 0},
               "from_currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
               "to_currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}},
              ["amount", "from_currency", "to_currency"]),
        _tool("stock_price", "Latest price of some stock tickers.",
              {"tickers": {"type": "array", "items": {"type": "string"}, "minItems": 1},
               "exchange": {"type": "string", "enum": ["NYSE", "NASDAQ"]}}, ["tickers"]),
    ],
}  # fmt: skip


def slow_deterministic_responder():
    """json_schema_responder, after a short sleep; but the simulator of BROKEN_TOOL always gets an
    answer that is not JSON, so the dialogues calling it are dropped once its retries run out.
    Every answer depends on the request alone."""
    answer = json_schema_responder()

    def respond(path: str, body: dict) -> tuple[int, dict]:
        time.sleep(REPLY_DELAY_S)
        if body["response_format"]["json_schema"]["name"].startswith(BROKEN_TOOL):
            return 200, chat_reply("this is not JSON")
        return answer(path, body)

    return respond


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"looptool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def make_workspace(root: Path, name: str, base_url: str) -> Path:
    ws = root / name
    cli("init", str(ws))
    role = f'kind = "endpoint"\nbase_url = "{base_url}"\nmodel = "m"\n'
    (ws / "looptool.toml").write_text(
        'name = "t"\n[serving]\nmax_retries = 1\n[seed]\nguidance = "grammar"\n'
        + "".join(f"[{section}]\n{role}" for section in ("policy", "generator", "judge"))
    )
    for domain, specs in TOOLS.items():
        path = root / f"{domain}.json"
        path.write_text(json.dumps(specs))
        cli("tools", "import", str(path), "-w", str(ws), "--domain", domain)
    return ws


def seed_args(ws: Path, n: int = N) -> list[str]:
    return ["seed", "-w", str(ws), "--n", str(n), "--concurrency", str(CONCURRENCY)]


def query(ws: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(str(ws / "looptool.db"), timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def bookkeeping(ws: Path, dialogue: str | None = None) -> dict[str, list[tuple]]:
    """Everything a seed run stores (of one dialogue, or of all), without timestamps and latencies
    (they differ between runs)."""
    where, params = ("WHERE dialogue_id = ?", (dialogue,)) if dialogue else ("", ())
    return {
        "dialogues": query(ws, "SELECT id, status, error, plan_json, tool_ids_json, thread_id FROM dialogues "
                               + where.replace("dialogue_id", "id") + " ORDER BY id", params),
        "messages": query(
            ws,
            "SELECT dialogue_id, idx, role, agent, content, tool_calls_json, tool_call_id, name, masked, model, "
            f"prompt_tokens, completion_tokens FROM messages {where} ORDER BY dialogue_id, idx", params,
        ),
        "samples": query(
            ws,
            "SELECT id, dialogue_id, parent_id, origin, round_added, messages_json, tools_json, label_json, "
            f"label_version, active, split, scenario FROM samples {where} ORDER BY id", params,
        ),
        # A node re-run after a kill clears its trace rows and writes them again under the same
        # keys, so the traces, too, are those of the uninterrupted run.
        "traces": query(
            ws,
            "SELECT dialogue_id, call_key, msg_idx, agent, role, prompt_ref, raw, parsed_json, status, error, model, "
            f"prompt_tokens, completion_tokens FROM traces {where} ORDER BY dialogue_id, call_key", params,
        ),
    }  # fmt: skip


def finished_count(ws: Path) -> int:
    return query(ws, "SELECT count(*) FROM dialogues WHERE status IN ('done', 'dropped')")[0][0]


def started_messages(ws: Path) -> dict[tuple[str, int], str]:
    """created_at of the stored messages of unfinished dialogues (dialogues past their plan)."""
    rows = query(
        ws,
        "SELECT m.dialogue_id, m.idx, m.created_at FROM messages m JOIN dialogues d ON d.id = m.dialogue_id "
        "WHERE d.status NOT IN ('done', 'dropped')",
    )
    return {(d, i): c for d, i, c in rows}


def wait_for_first_request(fake: FakeOpenAI, before: int, proc: subprocess.Popen) -> None:
    """Until the process has imported everything and sent its first request (or exited)."""
    deadline = time.monotonic() + 120
    while len(fake.requests) == before and proc.poll() is None:
        assert time.monotonic() < deadline, "the seed command sent no request"
        time.sleep(0.01)


def run_and_kill(fake: FakeOpenAI, ws: Path, delay_s: float, log: Path) -> bool:
    """Start the seed command in its own process group and SIGKILL the group `delay_s` after its
    first request. True when the kill found the run still going, False when it had finished."""
    with log.open("a") as out:
        before = len(fake.requests)
        proc = subprocess.Popen([*CLI, *seed_args(ws)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_first_request(fake, before, proc)
            time.sleep(delay_s)
            alive = proc.poll() is None
            if alive:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:  # the test failed mid-way: leave nothing behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    # A run may end between the check and the kill: then it exited 0 (or was killed after its work).
    assert proc.returncode in ((0, -signal.SIGKILL) if alive else (0,)), log.read_text()[-3000:]
    return alive and proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAI()
    server.responder = slow_deterministic_responder()
    server.server.handle_error = lambda request, address: None  # a killed client's broken pipe is expected
    yield server
    server.close()


@pytest.fixture(scope="module")
def reference(fake, tmp_path_factory):
    """Workspace A, seeded in one uninterrupted run; and how long that run worked (seconds from
    its first request to its exit)."""
    ws = make_workspace(tmp_path_factory.mktemp("reference"), "a", fake.endpoint.base_url)
    before = len(fake.requests)
    proc = subprocess.Popen([*CLI, *seed_args(ws)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_first_request(fake, before, proc)
    started = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    return ws, time.monotonic() - started


def test_seed_killed_repeatedly_resumes_to_the_data_of_an_uninterrupted_run(fake, reference, tmp_path):
    a, work_s = reference
    expected = bookkeeping(a)
    statuses = {status for _, status, *_ in expected["dialogues"]}
    assert statuses == {"done", "dropped"}, statuses  # both endings are exercised
    b = make_workspace(tmp_path, "b", fake.endpoint.base_url)

    # SIGKILL the whole process group at random moments of the work, several times.
    rng = random.Random(RNG_SEED)
    landed, partial, caught_dialogues = 0, 0, set()
    seen_messages: dict[tuple[str, int], str] = {}
    for _ in range(KILLS):
        if run_and_kill(fake, b, rng.uniform(0.04, 0.25) * work_s, tmp_path / "b-killed.log"):
            landed += 1
            partial += 0 < finished_count(b) < N
            for key, at in started_messages(b).items():
                caught_dialogues.add(key[0])
                seen_messages.setdefault(key, at)
    print(
        f"\nseed resume: reference worked {work_s:.1f}s; {landed}/{KILLS} kills landed mid-run, {partial} with some "
        f"but not all of {N} dialogues finished; {len(caught_dialogues)} dialogues caught part-way"
    )
    assert partial >= 1, "no kill interrupted the run part-way: the test proved nothing"
    assert seen_messages, "no kill caught a dialogue part-way (past its plan)"

    final = cli(*seed_args(b))
    assert "this run:" in final.stdout

    # Dialogues caught part-way resumed from their checkpoint: their stored messages were never
    # deleted and made again (a restarted dialogue is reset by its plan node and writes new rows).
    created = {(d, i): c for d, i, c in query(b, "SELECT dialogue_id, idx, created_at FROM messages")}
    restarted = sorted(key for key, at in seen_messages.items() if created.get(key) != at)
    assert not restarted, f"messages made again after a kill (the dialogue restarted): {restarted[:5]}"

    # The interrupted workspace ends with exactly the reference data.
    result = bookkeeping(b)
    ids = [row[0] for row in expected["dialogues"]]
    assert sorted(ids) == sorted(dialogue_id(0, i) for i in range(N))  # dialogues 0..N-1 of seed 0
    assert query(b, "SELECT count(*) FROM dialogues WHERE status NOT IN ('done', 'dropped')") == [(0,)]
    assert {k: len(v) for k, v in result.items()} == {k: len(v) for k, v in expected.items()}
    assert {row[:3] for row in result["dialogues"]} == {row[:3] for row in expected["dialogues"]}  # id, status, error
    assert result["dialogues"] == expected["dialogues"]
    for did in ids:
        mine = [row for row in result["messages"] if row[0] == did]
        assert [row[1] for row in mine] == list(range(len(mine))), did  # no gap, no duplicate
        assert mine == [row for row in expected["messages"] if row[0] == did], did
    assert result["samples"] == expected["samples"]
    for did in ids:
        mine = [row for row in result["traces"] if row[0] == did]
        theirs = [row for row in expected["traces"] if row[0] == did]
        assert [row[1] for row in mine] == [row[1] for row in theirs], did  # trace keys
        assert mine == theirs, did
    assert result == expected

    # Idempotent: the finished command again asks nothing and changes nothing (only the event log
    # gets its summary line, as after every run).
    tables = ("dialogues", "messages", "samples", "traces", "checkpoints", "writes")
    before = {t: sorted(query(b, f"SELECT * FROM {t}"), key=repr) for t in tables}
    requests = len(fake.requests)
    again = cli(*seed_args(b))
    assert f"0 verified, 0 dropped, {N} already finished" in again.stdout
    assert len(fake.requests) == requests
    assert {t: sorted(query(b, f"SELECT * FROM {t}"), key=repr) for t in tables} == before


# The seed command, killed (SIGKILL of itself) when it is about to save the checkpoint of step
# STEP: after that step's nodes ran and their writes were saved, before the step's checkpoint.
KILL_AT_STEP = """
import asyncio, os, signal
from looptool.checkpoint import ThreadedSqliteSaver

step, busy = int(os.environ["KILL_AT_STEP"]), []
put, put_writes = ThreadedSqliteSaver.aput, ThreadedSqliteSaver.aput_writes

async def counted_put_writes(self, *args, **kwargs):
    busy.append(1)
    try:
        return await put_writes(self, *args, **kwargs)
    finally:
        busy.pop()

async def killing_put(self, config, checkpoint, metadata, new_versions):
    if metadata.get("step") == step:
        await asyncio.sleep(0.2)  # the step's writes are on their way: wait until they are saved
        while busy:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
    return await put(self, config, checkpoint, metadata, new_versions)

ThreadedSqliteSaver.aput, ThreadedSqliteSaver.aput_writes = killing_put, counted_put_writes
from looptool.cli import app
app()
"""


def test_seed_killed_between_a_steps_writes_and_its_checkpoint_redoes_nothing(fake, reference, tmp_path):
    """Kill one dialogue at every step boundary in turn, where a step's writes are saved but its
    checkpoint is not: each run must resume with those writes (not restart the dialogue, whose
    channels would still hold the killed run's assistant samples), so no request is ever repeated
    and the data is the reference's."""
    a, _ = reference
    c = make_workspace(tmp_path, "c", fake.endpoint.base_url)
    only = dialogue_id(0, 0)  # the first dialogue of seed 0, the one `--n 1` makes
    (steps,) = query(a, "SELECT count(*) FROM checkpoints WHERE thread_id = ?", (only,))[0]  # one per step
    before = len(fake.requests)
    for step in range(steps + 3):
        run = subprocess.run([sys.executable, "-c", KILL_AT_STEP, *seed_args(c, n=1)], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "KILL_AT_STEP": str(step)})  # fmt: skip
        assert run.returncode in (0, -signal.SIGKILL), run.stdout + run.stderr
        # Every model request is recorded by one trace row (under its call key and attempt): a
        # request made again, by a restarted dialogue or a re-run node, leaves more requests than rows.
        made = query(c, "SELECT count(*) FROM traces WHERE model IS NOT NULL")[0][0]
        assert len(fake.requests) - before == made, f"requests made again after the kill at step {step - 1}"
        if run.returncode == 0:
            break
    else:
        pytest.fail(f"not finished after {step + 1} runs, each killed one step further: runs restart, not resume")
    print(f"\nseed resume: one dialogue killed at each of its {step} step boundaries")
    assert step >= 8, step  # several assistant turns: samples and votes were interrupted too
    assert [d for d, *_ in query(c, "SELECT id FROM dialogues")] == [only]
    assert bookkeeping(c) == bookkeeping(a, only)
