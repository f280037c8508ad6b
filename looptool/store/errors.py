"""StoreError, and the one line that tells a user what an SQLite error means for their workspace."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StoreError(Exception):
    """The database is missing, foreign, damaged, read-only, from a newer LoopTool, or a row is not there."""


def damaged(path: str | Path, detail: str) -> str:
    """The one line for a database that SQLite cannot read as LoopTool wrote it."""
    return (
        f"{path} is damaged ({detail}); nothing was changed. `sqlite3 {path} .recover | sqlite3 recovered.db` "
        "saves the rows that can still be read (then move recovered.db into its place), or restore a backup"
    )


def database_error_line(path: str | Path, exc: sqlite3.DatabaseError) -> str:
    """One line for an SQLite error reaching the command line, by what a user can do about it."""
    text = " ".join(str(exc).split())[:200]
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return f"{path} is read-only ({text}); this command writes to it: make it writable, or copy the workspace"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return f"{path} is busy ({text}): another process holds it; try again when it is done"
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return f"{path}: the disk is full ({text}); nothing was changed"
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")):
        return f"{path}: cannot read or write the file ({text})"
    return damaged(path, text)
