"""How fast the TUI's dashboard follows a loop that runs in another process.

The TUI (the real app, headless under Textual's Pilot, at 120x40) watches a workspace while a loop
writes to it from another process -- started by this script (`--start-loop`) or by you. Every
0.1 s the script reads each round's (status, stage) straight from the database, and notes when the
dashboard's rounds table shows the same; the lag of each change is printed, with the TUI's failed
reads and whether "locked" ever appeared on the screen (looked for once a second).

    .venv/bin/python benchmarks/tui_follow.py WORKSPACE [--seconds 900] [--start-loop] [--rounds N]

It ends after `--seconds`, or when the loop (started here or elsewhere) has exited and the screen
has caught up.
The dashboard polls every 0.5 s (the app's default); the target is a lag under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from looptool.config import DB_FILE
from looptool.loop.control import running_loop_pid
from looptool.store import Store, StoreError
from looptool.tui.app import LoopToolApp
from looptool.tui.widgets.rounds_table import RoundsTable


def db_stages(db: Path) -> dict[int, tuple[str, str]]:
    """round -> (status, stage), read through a store opened for this one read."""
    with Store.open(db) as store:
        return {r.n: (r.status, r.stage or "-") for r in store.rounds()}


async def follow(workspace: Path, seconds: float, loop: subprocess.Popen | None) -> int:
    db = workspace / DB_FILE
    app = LoopToolApp(workspace)
    lags: list[float] = []
    pending: dict[int, tuple[tuple[str, str], float]] = {}  # round -> (state in the db, when first seen)
    last_db: dict[int, tuple[str, str]] = {}
    locked_seen = False
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(2.0)
        table = app.screen.query_one(RoundsTable)
        started = time.monotonic()
        loop_ended_at = None
        seen_running = False
        last_screenshot = 0.0
        while time.monotonic() - started < seconds:
            now = time.monotonic()
            try:
                current = db_stages(db)
            except (sqlite3.Error, StoreError) as exc:  # the benchmark's own read; the TUI's are counted apart
                print(f"  (benchmark read failed: {exc})")
                current = last_db
            for n, state in current.items():
                if last_db.get(n) != state:
                    pending[n] = (state, now)
                    print(f"{now - started:7.1f}s  db      round {n}: {state[0]} / {state[1]}", flush=True)
            last_db = current
            for n, (state, since) in list(pending.items()):
                if table.state_of(n) == state:
                    lags.append(now - since)
                    print(f"{now - started:7.1f}s  screen  round {n}: {state[0]} / {state[1]}  lag {now - since:.2f}s",
                          flush=True)
                    del pending[n]
                elif now - since > 10:  # a state that was replaced before the screen showed it
                    print(f"{now - started:7.1f}s  screen  round {n}: {state[0]} / {state[1]}  NOT SHOWN within 10 s",
                          flush=True)
                    lags.append(float("inf"))
                    del pending[n]
            if now - last_screenshot >= 1.0:  # a screenshot costs CPU the loop needs; once a second
                last_screenshot = now
                locked_seen = locked_seen or "locked" in app.export_screenshot().lower()
            running = running_loop_pid(workspace) is not None or (loop is not None and loop.poll() is None)
            seen_running = seen_running or running
            if seen_running and not running:
                loop_ended_at = loop_ended_at or now
                if not pending and now - loop_ended_at > 3:
                    break
            await pilot.pause(0.1)
    finite = sorted(x for x in lags if x != float("inf"))
    print(f"\nstate changes seen: {len(lags)}; shown within 2 s: {sum(x < 2 for x in lags)}; "
          f"not shown within 10 s: {sum(x == float('inf') for x in lags)}")
    if finite:
        print(f"lag: median {finite[len(finite) // 2]:.2f} s, max {finite[-1]:.2f} s")
    print(f"TUI reads that failed (retried on the next poll): {app.read_errors}; 'locked' on screen: {locked_seen}")
    if loop is not None:
        print(f"loop exit code: {loop.poll()}")
    return 0 if lags and all(x < 2 for x in lags) and not locked_seen else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--start-loop", action="store_true", help="run 'looptool loop' on the workspace meanwhile")
    parser.add_argument("--rounds", type=int, default=None, help="--rounds for the loop it starts")
    args = parser.parse_args()
    loop = None
    if args.start_loop:
        command = [sys.executable, "-m", "looptool.cli", "loop", "-w", str(args.workspace)]
        if args.rounds:
            command += ["--rounds", str(args.rounds)]
        log = open(args.workspace / "logs" / "bench-loop.log", "ab")
        loop = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"loop started (pid {loop.pid}): {' '.join(command)}")
    try:
        sys.exit(asyncio.run(follow(args.workspace, args.seconds, loop)))
    finally:
        if loop is not None and loop.poll() is None:
            loop.terminate()


if __name__ == "__main__":
    main()
