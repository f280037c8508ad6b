"""The SQLite checkpointer of every graph: LangGraph's SqliteSaver in the workspace database.

Graphs run on asyncio, but this is the synchronous saver with each call moved whole onto a worker
thread. Why not `AsyncSqliteSaver`: its write transactions stay open across awaits (execute, then
commit later), so a short synchronous store write on the event loop would wait for a lock whose
release needs the very loop it blocks -- a deadlock that ends in "database is locked". Here every
checkpoint write begins and commits inside one thread call, so nobody ever waits on the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

BUSY_TIMEOUT_S = 60


class ThreadedSqliteSaver(SqliteSaver):
    """SqliteSaver whose async methods run the sync ones in a worker thread."""

    async def aget_tuple(self, config):
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config, *, filter=None, before=None, limit=None) -> AsyncIterator:
        items = await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config, checkpoint, metadata, new_versions):
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config, channels):
        return await asyncio.to_thread(lambda: self.get_delta_channel_history(config=config, channels=channels))


def open_checkpointer(db_path: str | Path) -> ThreadedSqliteSaver:
    """A checkpointer on the workspace database (its tables are created on first use)."""
    conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    saver = ThreadedSqliteSaver(conn)
    saver.setup()
    return saver
