"""Who may run the loop on a workspace, and how a person stops it or holds it at the review gate.

A run can be asked to stop after the node it is running (`request_pause`: `looptool pause` or the
TUI). The request is a file in the workspace, so any process can make it; the loop looks for it
after each node (graph.py).

One loop at a time runs on a workspace: `run_loop` holds an exclusive lock on `loop.lock` (an
flock, so it goes with the process however it ends) and writes its pid there; a second run fails
with a one-line error, and `running_loop_pid` tells any process (the TUI) which loop runs.

`review_pending` tells whether the loop waits at the review gate of a round's verdicts.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from looptool.config import DB_FILE
from looptool.store import Store, utc_now


class LoopError(Exception):
    """The loop cannot start or go on (no data, a round without its adapter)."""


PAUSE_FILE = "loop.pause"
LOCK_FILE = "loop.lock"


def request_pause(workspace: Path) -> Path:
    """Ask the loop running on this workspace (in any process) to stop after its current node."""
    path = Path(workspace) / PAUSE_FILE
    path.write_text(utc_now() + "\n", encoding="utf-8")
    return path


def pause_requested(workspace: Path) -> bool:
    """Whether a pause of the loop has been asked for and not yet taken."""
    return (Path(workspace) / PAUSE_FILE).is_file()


def _take_pause_request(workspace: Path) -> bool:
    """Remove a pending pause request; True when there was one."""
    try:
        (Path(workspace) / PAUSE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def running_loop_pid(workspace: Path) -> int | None:
    """The pid of the loop running on this workspace (in any process), or None when none runs."""
    path = Path(workspace) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0  # 0: running, its pid not yet written
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def _only_loop(workspace: Path, wait_s: float = 1.0) -> Iterator[None]:
    """Hold the workspace's loop lock while the loop runs; LoopError when another loop holds it.
    It waits up to `wait_s`, since a reader (`running_loop_pid`) holds it for an instant."""
    fd = os.open(Path(workspace) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pid = running_loop_pid(workspace)
                    raise LoopError(f"another loop runs on {workspace} (pid {pid or '?'}); 'looptool pause -w "
                                    f"{workspace}' stops it after its current stage") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def review_pending(workspace: Path) -> int | None:
    """The round whose verdicts wait at the review gate, or None when the loop is not waiting there.

    This reads LangGraph's own record -- the latest checkpoint of the loop's thread and its pending
    writes -- because that is what decides whether `run_loop` pauses: a round's stage stays
    "verify" (and "running") both while the judge works and while the gate waits, so the round
    rows alone cannot tell the two apart. An interrupt write (from the review node, raised through
    the verify subgraph) marks the gate; a resume write beside it means the gate was released.
    Reads only; a workspace where no loop has run has no checkpoint tables and waits for nothing.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    db_path = Path(workspace) / DB_FILE
    with Store.open(db_path) as store:
        if not store.has_table("checkpoints") or not store.has_table("writes"):
            return None
    conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=10)
    try:
        saver = SqliteSaver(conn)
        saver.is_setup = True  # the tables exist: skip the set-up, which may write
        found = saver.get_tuple({"configurable": {"thread_id": "loop", "checkpoint_ns": ""}})
    finally:
        conn.close()
    if found is None:
        return None
    channels = {channel for _, channel, _ in found.pending_writes or []}
    if "__interrupt__" not in channels or "__resume__" in channels:
        return None
    return int(found.checkpoint.get("channel_values", {}).get("round", 1))
