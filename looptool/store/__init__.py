"""The workspace database: the one place in LoopTool that speaks SQL.

Why it looks like this:

* One SQLite file per workspace (`looptool.db`) holds everything -- tools, dialogues, samples,
  probes, verdicts, rounds and the event log -- so a workspace is a directory you can copy, and
  LangGraph's checkpointer can share the same file.
* WAL mode with a busy timeout lets the TUI read while a worker writes, and lets two processes
  write without "database is locked" errors. Every write runs in a `BEGIN IMMEDIATE` transaction,
  so a process killed mid-batch leaves nothing half-written.
* Every row is keyed by a stable id derived from content (see `looptool.schema.stable_id`), and
  every write is an upsert: re-running a stage overwrites its rows with the latest values instead
  of adding duplicates, and keeps the original `created_at`.
* Opening a current database only reads it, so a command that fails writes nothing.
* An SQLite error about the file (busy, read-only, a full disk, a damaged page) leaves every
  method as one StoreError line naming the file, so a caller catches StoreError alone; one that
  means the calling code is wrong (a broken constraint) stays SQLite's own.

Where things are (one `Store` class, put together from one part per kind of row):

* `schema` -- SCHEMA_VERSION, the tables of version 1 and the MIGRATIONS that bring a file up to date.
* `errors` -- StoreError, and the one line that says what an SQLite error means for the workspace.
* `clock` -- utc_now, the time every written row carries.
* `base` -- StoreBase: opening, creating and checking the file, transactions, the query helpers.
* The mixins, each a StoreBase that adds the SQL for its rows: `tools`; `dialogues` (messages,
  the seed agents' traces, the loop agents' calls); `samples` (labels and their history,
  expansions); `rounds` (probes, verdicts, rounds, the event log); `evaluation` (evaluation runs
  and training steps); `copies` (backup, reset to the seed data); `views` (read models for the
  CLI and the terminal UI).
* `Store`, defined here, is all of them together; import it and its names from `looptool.store`.
"""

from __future__ import annotations

from .base import StoreBase
from .clock import utc_now
from .copies import CopiesMixin
from .dialogues import DialoguesMixin
from .errors import StoreError, damaged, database_error_line
from .evaluation import EvaluationMixin
from .rounds import RoundsMixin
from .samples import SamplesMixin
from .schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION, TABLES
from .tools import ToolsMixin
from .views import ViewsMixin

__all__ = [
    "MIGRATIONS", "SCHEMA_SQL", "SCHEMA_VERSION", "TABLES", "Store", "StoreBase", "StoreError", "damaged",
    "database_error_line", "utc_now",
]


class Store(ToolsMixin, DialoguesMixin, SamplesMixin, RoundsMixin, EvaluationMixin, CopiesMixin, ViewsMixin):
    """A LoopTool workspace database. Use `Store.create(path)` once, then `Store(path)`."""
