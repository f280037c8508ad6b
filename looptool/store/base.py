"""The core of the workspace database: opening, creating and checking the file, transactions, and
the query helpers every part of `Store` writes and reads through.

`StoreBase` is the only part that holds the connection. The mixins beside this module (tools,
dialogues, samples, ...) subclass it, so each of them reads as "SQL for one kind of row, on top of
this plumbing"; `Store` (in `looptool.store`) puts them together.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from sqlite_utils import Database

from ..schema import canonical_json
from .errors import StoreError, damaged, database_error_line
from .schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION, TABLES


def _dump(model: Any) -> str:
    return canonical_json(model.model_dump(mode="json"))


def _dumps(models: Sequence[Any]) -> str:
    return canonical_json([m.model_dump(mode="json") for m in models])


def about_the_file(exc: sqlite3.DatabaseError) -> bool:
    """Whether an SQLite error is about the database file -- busy, read-only, a full disk, a
    damaged page, a table gone -- rather than about the code that called it (a broken constraint
    such as a probe of a sample that is not there, a misused binding). The first kind is something
    a user can act on and becomes a StoreError; the second is a bug and stays SQLite's own."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def _warn_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


class StoreBase:
    """The connection to one workspace database and the plumbing on it; `Store` adds the rows."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"no LoopTool database at {self.path}; run 'looptool init' first")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file_errors():  # a file SQLite cannot open at all (no permission to read it, say)
            conn = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False)
        self.db = Database(conn, execute_plugins=False)
        self._lock = threading.RLock()
        # Where a row that no longer validates is reported when it is skipped (once per row).
        self.warn: Callable[[str], None] = _warn_stderr
        self._skipped: set[str] = set()
        try:
            for pragma in ("busy_timeout=10000", "foreign_keys=ON", "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
            if create and not self._has_meta():
                self._create_schema()
            self._check_version()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._store_error(exc) from None
        except BaseException:
            conn.close()
            raise

    @classmethod
    def open(cls, path: str | Path) -> Self:
        """Open an existing workspace database."""
        return cls(path)

    @classmethod
    def create(cls, path: str | Path) -> Self:
        """Create the database file and schema (a no-op on an existing current database)."""
        return cls(path, create=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------------------

    def _has_meta(self) -> bool:
        return "meta" in self.db.table_names()

    def _create_schema(self) -> None:
        # WAL is a property of the file, so it is set once here; later opens leave it alone.
        self.db.conn.execute("PRAGMA journal_mode=WAL")
        with self.transaction():
            for statement in SCHEMA_SQL:
                self.db.execute(statement)
            self.db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")

    def _check_version(self) -> None:
        if not self._has_meta():
            raise StoreError(f"{self.path} is not a LoopTool database (no meta table)")
        if self.db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self.db.conn.execute("PRAGMA journal_mode=WAL")
        if self.schema_version() == SCHEMA_VERSION:
            # The common case: read only, write nothing. A table dropped by hand would otherwise
            # surface as "no such table" in the middle of some later command.
            missing = {"meta", *TABLES} - set(self.db.table_names())
            if missing:
                raise StoreError(damaged(self.path, f"table {', '.join(sorted(missing))} missing"))
            return
        with self.transaction():  # re-read under the write lock: another process may migrate too
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer LoopTool (schema version {version}; "
                    f"this LoopTool knows up to {SCHEMA_VERSION}): upgrade LoopTool"
                )
            for n in range(version, SCHEMA_VERSION):
                if n not in MIGRATIONS:
                    raise StoreError(f"no migration from schema version {n} to {n + 1}")
                MIGRATIONS[n](self.db)
            self.db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
            )

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
        if row is None:
            raise StoreError(damaged(self.path, "no schema_version in its meta table"))
        try:
            return int(row["value"])
        except (TypeError, ValueError):
            raise StoreError(damaged(self.path, f"schema_version is {str(row['value'])[:40]!r}, not a number")) from None

    # -- plumbing --------------------------------------------------------------------------------

    def _store_error(self, exc: sqlite3.DatabaseError, path: str | Path | None = None) -> StoreError:
        """The one StoreError line for an SQLite error about the file at `path` (this database by default)."""
        where = self.path if path is None else path
        if "not a database" in str(exc):  # the header is not SQLite's: a foreign file, or garbage
            return StoreError(f"{where} is not a usable LoopTool database: {exc}")
        return StoreError(database_error_line(where, exc))

    @contextlib.contextmanager
    def _file_errors(self, path: str | Path | None = None) -> Iterator[None]:
        """Raise an SQLite error about the file (see `about_the_file`) as one StoreError line naming it.

        Every read and write goes through `_rows` or `transaction`, which both run under this, so
        no such error leaves a Store method as SQLite's own: a caller catches StoreError alone.
        """
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not about_the_file(exc):
                raise
            raise self._store_error(exc, path) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """All writes inside commit together or not at all. Nested blocks use savepoints.

        `BEGIN IMMEDIATE` takes the write lock up front, so a concurrent writer waits for the busy
        timeout instead of failing on a lock upgrade.
        """
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                conn.execute("SAVEPOINT looptool_nested")
                try:
                    yield self
                except BaseException:
                    conn.execute("ROLLBACK TO SAVEPOINT looptool_nested")
                    conn.execute("RELEASE SAVEPOINT looptool_nested")
                    raise
                conn.execute("RELEASE SAVEPOINT looptool_nested")
                return
            with self._file_errors():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock, self._file_errors():
            return list(self.db.query(sql, params if isinstance(params, dict) else list(params)))

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _upsert(self, table: str, row: dict[str, Any], pk: tuple[str, ...]) -> None:
        """INSERT, or UPDATE every column except the key and `created_at` on conflict."""
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in pk and c != "created_at")
        sql = (
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates}"
        )
        with self.transaction():
            self.db.execute(sql, [row[c] for c in cols])

    def _update(self, sql: str, params: Sequence[Any], what: str) -> None:
        with self.transaction():
            if self.db.execute(sql, list(params)).rowcount == 0:
                raise KeyError(what)

    def _count_by(self, sql: str, params: Sequence[Any] = ()) -> dict[Any, int]:
        return {r["k"]: r["c"] for r in self._rows(sql, params)}
