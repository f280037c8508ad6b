"""The workspace database: the one place in LoopTool that speaks SQL.

Why it looks like this:

* One SQLite file per workspace (`looptool.db`) holds everything -- tools, dialogues, samples,
  probes, verdicts, rounds and the event log -- so a workspace is a directory you can copy, and
  LangGraph's checkpointer can share the same file.
* WAL mode with a busy timeout lets the TUI read while a worker writes, and lets two processes
  write without "database is locked" errors. Every write runs in a `BEGIN IMMEDIATE` transaction,
  so a process killed mid-batch leaves nothing half-written.
* Every row is keyed by a stable id derived from content (see `schema.stable_id`), and every write
  is an upsert: re-running a stage overwrites its rows with the latest values instead of adding
  duplicates, and keeps the original `created_at`.
* Opening a current database only reads it, so a command that fails writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError
from sqlite_utils import Database

from .schema import (
    Dialogue,
    DialogueStatus,
    Label,
    Message,
    Probe,
    Round,
    Sample,
    ToolCall,
    ToolSpec,
    Verdict,
    VerdictKind,
    canonical_json,
    stable_id,
)

SCHEMA_VERSION = 7

TABLES = (
    "tools", "dialogues", "messages", "traces", "samples", "probes", "verdicts", "rounds", "events",
    "eval_runs", "eval_results", "eval_scores", "train_steps", "label_history",
    "expansions", "agent_calls",
)

# The schema of version 1. A new database is created at version 1 and brought up to date by the
# same MIGRATIONS that upgrade an old file, so the two can never differ. Column names and keys are
# the data model of the design; `messages` also keeps `tool_call_id` and `name` so that a Message
# round-trips exactly.
SCHEMA_SQL = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE tools (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain TEXT NOT NULL DEFAULT '',
        spec_json TEXT NOT NULL, source TEXT NOT NULL DEFAULT '', tree_path TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL)""",
    "CREATE INDEX idx_tools_name ON tools (name)",
    "CREATE INDEX idx_tools_domain ON tools (domain)",
    """CREATE TABLE dialogues (id TEXT PRIMARY KEY, plan_json TEXT NOT NULL, status TEXT NOT NULL,
        error TEXT, tool_ids_json TEXT NOT NULL, thread_id TEXT, created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX idx_dialogues_status ON dialogues (status)",
    """CREATE TABLE messages (dialogue_id TEXT NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL, role TEXT NOT NULL, agent TEXT, content TEXT,
        tool_calls_json TEXT NOT NULL, tool_call_id TEXT, name TEXT, model TEXT,
        latency_ms REAL, prompt_tokens INTEGER, completion_tokens INTEGER,
        created_at TEXT NOT NULL, PRIMARY KEY (dialogue_id, idx))""",
    """CREATE TABLE samples (id TEXT PRIMARY KEY, dialogue_id TEXT, parent_id TEXT,
        origin TEXT NOT NULL, round_added INTEGER NOT NULL, messages_json TEXT NOT NULL,
        tools_json TEXT NOT NULL, label_json TEXT NOT NULL, label_version INTEGER NOT NULL,
        active INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX idx_samples_origin ON samples (origin)",
    "CREATE INDEX idx_samples_round_added ON samples (round_added)",
    "CREATE INDEX idx_samples_active ON samples (active)",
    "CREATE INDEX idx_samples_parent_id ON samples (parent_id)",
    "CREATE INDEX idx_samples_dialogue_id ON samples (dialogue_id)",
    """CREATE TABLE probes (sample_id TEXT NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
        round INTEGER NOT NULL, prediction_json TEXT, raw TEXT NOT NULL, correct INTEGER NOT NULL,
        ppl REAL, category TEXT, PRIMARY KEY (sample_id, round))""",
    "CREATE INDEX idx_probes_round_category ON probes (round, category)",
    """CREATE TABLE verdicts (sample_id TEXT NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
        round INTEGER NOT NULL, verdict TEXT NOT NULL, corrected_label_json TEXT,
        rationale TEXT NOT NULL, judge_model TEXT NOT NULL, human_override TEXT,
        created_at TEXT NOT NULL, PRIMARY KEY (sample_id, round))""",
    "CREATE INDEX idx_verdicts_round_verdict ON verdicts (round, verdict)",
    """CREATE TABLE rounds (n INTEGER PRIMARY KEY, status TEXT NOT NULL, stage TEXT,
        started_at TEXT, finished_at TEXT, adapter_path TEXT, data_ids_json TEXT NOT NULL,
        metrics_json TEXT NOT NULL)""",
    """CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL,
        level TEXT NOT NULL, stage TEXT NOT NULL, message TEXT NOT NULL)""",
    "CREATE INDEX idx_events_ts ON events (ts)",
]


def _migrate_1_to_2(db: Database) -> None:
    """Seed dialogues: the agent trace, masked assistant turns, and sample split/scenario."""
    for statement in [
        # One row per agent call (a model request, or a simulated tool result). `call_key` names
        # the call within its dialogue (e.g. "m3.assistant.s1.a0": message 3, sample 1, attempt 0),
        # so a call re-run after a crash overwrites its row instead of adding one.
        """CREATE TABLE traces (dialogue_id TEXT NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            call_key TEXT NOT NULL, msg_idx INTEGER, agent TEXT NOT NULL, role TEXT NOT NULL,
            prompt_ref TEXT NOT NULL, raw TEXT, parsed_json TEXT, status TEXT NOT NULL, error TEXT,
            model TEXT, latency_ms REAL, prompt_tokens INTEGER, completion_tokens INTEGER,
            created_at TEXT NOT NULL, PRIMARY KEY (dialogue_id, call_key))""",
        "ALTER TABLE messages ADD COLUMN masked INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE samples ADD COLUMN split TEXT NOT NULL DEFAULT 'train'",
        "ALTER TABLE samples ADD COLUMN scenario TEXT",
        "CREATE INDEX idx_samples_split ON samples (split)",
    ]:
        db.execute(statement)


def _migrate_2_to_3(db: Database) -> None:
    """Evaluation: runs, one row per scored entry, and per-category scores."""
    for statement in [
        # A run is one model (base or a round's adapter) under one set of settings, on one suite
        # ("bfcl" or "heldout"). Its id is derived from those, so evaluating again continues the
        # same run: entries already scored are kept, new categories add to it.
        """CREATE TABLE eval_runs (id TEXT PRIMARY KEY, suite TEXT NOT NULL, model TEXT NOT NULL,
            adapter TEXT, round INTEGER, settings_json TEXT NOT NULL, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX idx_eval_runs_suite_round ON eval_runs (suite, round)",
        """CREATE TABLE eval_results (run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            entry_id TEXT NOT NULL, category TEXT NOT NULL, output TEXT, decoded_json TEXT,
            passed INTEGER NOT NULL, error_type TEXT, error TEXT, latency_ms REAL,
            prompt_tokens INTEGER, completion_tokens INTEGER, created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, entry_id))""",
        "CREATE INDEX idx_eval_results_category ON eval_results (run_id, category)",
        """CREATE TABLE eval_scores (run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            category TEXT NOT NULL, total INTEGER NOT NULL, passed INTEGER NOT NULL,
            accuracy REAL NOT NULL, errors INTEGER NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, category))""",
    ]:
        db.execute(statement)


def _migrate_3_to_4(db: Database) -> None:
    """Training: one row per logged optimiser step of a round's SFT or GRPO run."""
    # Keyed by (round, stage, step): a run resumed from a checkpoint logs its steps again and
    # overwrites them instead of adding duplicates.
    db.execute("""CREATE TABLE train_steps (round INTEGER NOT NULL, stage TEXT NOT NULL, step INTEGER NOT NULL,
        metrics_json TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (round, stage, step))""")


def _migrate_4_to_5(db: Database) -> None:
    """The loop: every label a sample had before a correction, so a correction can be audited and undone."""
    db.execute("""CREATE TABLE label_history (sample_id TEXT NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
        label_version INTEGER NOT NULL, label_json TEXT NOT NULL, replaced_at TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (sample_id, label_version))""")
    # One row per expansion attempt of an error sample in a round: `slot` numbers the attempts, so a
    # run started again skips slots already tried; `status` is kept / invalid / rejected / duplicate.
    db.execute("""CREATE TABLE expansions (parent_id TEXT NOT NULL, round INTEGER NOT NULL, slot INTEGER NOT NULL,
        status TEXT NOT NULL, sample_id TEXT, dimension TEXT NOT NULL, detail TEXT, created_at TEXT NOT NULL,
        PRIMARY KEY (parent_id, round, slot))""")


def _migrate_5_to_6(db: Database) -> None:
    """The method as the paper runs it: exact labels, how a verdict was reached, and a trace of
    every judge and expander call of the loop."""
    for statement in [
        # 1: the label is exact by construction (templated, imported ground truth): never judged.
        "ALTER TABLE samples ADD COLUMN exact INTEGER NOT NULL DEFAULT 0",
        # judge / rule / no_answer (schema.VerdictBasis); older rows marked "no valid verdict" by
        # their rationale's prefix get their own value.
        "ALTER TABLE verdicts ADD COLUMN basis TEXT NOT NULL DEFAULT 'judge'",
        "UPDATE verdicts SET basis = 'no_answer' WHERE rationale LIKE '[the judge gave no valid verdict]%'",
        "UPDATE verdicts SET basis = 'rule' WHERE judge_model = '' AND rationale LIKE '%(no judge asked)%'",
        # One row per model call of a loop agent (judge, expander) about a subject: "verdict:<sample
        # id>:<round>", "expansion:<parent id>:<round>:<slot>". `call_key` names the call within its
        # subject ("v0.a1": vote 0, attempt 1), so a call made again after a kill overwrites its row.
        # `prompt` is the text the model was given (the seed agents' traces keep only its reference).
        """CREATE TABLE agent_calls (subject TEXT NOT NULL, call_key TEXT NOT NULL, sample_id TEXT,
            round INTEGER, agent TEXT NOT NULL, prompt_ref TEXT NOT NULL, prompt TEXT, raw TEXT,
            parsed_json TEXT, status TEXT NOT NULL, error TEXT, model TEXT, latency_ms REAL,
            prompt_tokens INTEGER, completion_tokens INTEGER, created_at TEXT NOT NULL,
            PRIMARY KEY (subject, call_key))""",
        "CREATE INDEX idx_agent_calls_sample ON agent_calls (sample_id, round)",
    ]:
        db.execute(statement)


def _migrate_6_to_7(db: Database) -> None:
    """A person's review decision is kept for the label version it was about: each verdict records
    the version of the label it judged."""
    db.execute("ALTER TABLE verdicts ADD COLUMN label_version INTEGER")
    # Older verdicts: a label changes only when a round's verdicts are applied (its history reason
    # "round R: ..."), so a verdict of round R judged the first version replaced in round R or
    # later, or, when none was, the sample's current version.
    db.execute("""UPDATE verdicts SET label_version = coalesce(
        (SELECT min(h.label_version) FROM label_history h WHERE h.sample_id = verdicts.sample_id
         AND h.reason LIKE 'round %:%'
         AND CAST(substr(h.reason, 7, instr(h.reason, ':') - 7) AS INTEGER) >= verdicts.round),
        (SELECT s.label_version FROM samples s WHERE s.id = verdicts.sample_id))""")


# MIGRATIONS[n] upgrades a database from version n to n + 1; all run in one transaction.
MIGRATIONS: dict[int, Callable[[Database], None]] = {
    1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5, 5: _migrate_5_to_6,
    6: _migrate_6_to_7,
}


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


def utc_now() -> str:
    """Current time as a UTC ISO-8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dump(model: Any) -> str:
    return canonical_json(model.model_dump(mode="json"))


def _dumps(models: Sequence[Any]) -> str:
    return canonical_json([m.model_dump(mode="json") for m in models])


def _warn_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}"


class Store:
    """A LoopTool workspace database. Use `Store.create(path)` once, then `Store(path)`."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"no LoopTool database at {self.path}; run 'looptool init' first")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
            if "not a database" in str(exc):  # the header is not SQLite's: a foreign file, or garbage
                raise StoreError(f"{self.path} is not a usable LoopTool database: {exc}") from None
            raise StoreError(database_error_line(self.path, exc)) from None
        except BaseException:
            conn.close()
            raise

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open an existing workspace database."""
        return cls(path)

    @classmethod
    def create(cls, path: str | Path) -> Store:
        """Create the database file and schema (a no-op on an existing current database)."""
        return cls(path, create=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
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

    # -- tools -----------------------------------------------------------------------------------

    def upsert_tool(self, spec: ToolSpec, *, domain: str = "", source: str = "", tree_path: str = "",
                    on_duplicate: str = "refuse", check_samples: bool = True) -> str | None:
        """Store a tool; its id is derived from the spec, so the same spec gets the same id.

        A name is one tool: models call tools by name, so a second, different spec under a name
        already stored would put two tools of that name before the model. `on_duplicate` says what
        happens to such a spec: "refuse" (StoreError; inside `upsert_tools` nothing of the batch is
        stored), "skip" (the stored spec stays; returns None) or "replace" (the stored spec is
        deleted first, refused when a dialogue or sample uses it: their data was made with it).
        The same holds for a tool that stored samples offer under that name with other parameters
        (the templated samples' built-in tools among them): "skip" skips the new spec, and the other
        two refuse it (`check_samples`: False when the caller, `upsert_tools`, has checked already).
        """
        tool_id = stable_id("t", spec.model_dump())
        row = {"id": tool_id, "name": spec.name, "domain": domain,
               "spec_json": _dump(spec), "source": source,
               "tree_path": tree_path, "created_at": utc_now()}
        with self.transaction():
            clash = self.sample_tool_clashes([spec], source=source)[0] if check_samples else None
            if clash is not None:
                if on_duplicate == "skip":
                    return None
                raise StoreError(clash)
            other = self._one("SELECT id, domain, source FROM tools WHERE name = ? AND id != ? LIMIT 1", [spec.name, tool_id])
            if other is not None:
                if on_duplicate == "skip":
                    return None
                if on_duplicate != "replace":
                    raise StoreError(
                        f"tool {spec.name!r} is already in the workspace with a different spec ({other['id']}, domain "
                        f"{other['domain']!r}, from {other['source'] or 'unknown'}); a name is one tool: rename the new "
                        "one, or import with --on-duplicate skip (keep the stored spec) or --on-duplicate replace"
                    )
                self._delete_tool_named(spec.name, keep=tool_id)
            self._upsert("tools", row, ("id",))
        return tool_id

    def _delete_tool_named(self, name: str, keep: str) -> None:
        """Delete the tools called `name` other than `keep`, unless data was made with them."""
        used = self._one(
            "SELECT (SELECT count(*) FROM dialogues d, tools t WHERE t.name = :name AND t.id != :keep "
            "        AND EXISTS (SELECT 1 FROM json_each(d.tool_ids_json) j WHERE j.value = t.id)) AS dialogues, "
            "       (SELECT count(*) FROM samples s WHERE EXISTS (SELECT 1 FROM json_each(s.tools_json) j "
            "        WHERE json_extract(j.value, '$.name') = :name)) AS samples",
            {"name": name, "keep": keep},
        )
        if used and (used["dialogues"] or used["samples"]):
            raise StoreError(
                f"tool {name!r} cannot be replaced: {used['dialogues']} dialogues and {used['samples']} samples were "
                "made with the stored spec; use --on-duplicate skip, or import into a new workspace"
            )
        self.db.execute("DELETE FROM tools WHERE name = ? AND id != ?", [name, keep])

    def upsert_tools(self, specs: Sequence[ToolSpec], *, domain: str = "", source: str = "",
                     tree_path: str = "", on_duplicate: str = "refuse") -> list[str | None]:
        """Store several tools in one transaction; returns their ids (None: skipped, see upsert_tool)."""
        if on_duplicate not in ("refuse", "skip", "replace"):
            raise ValueError(f"on_duplicate must be refuse, skip or replace, got {on_duplicate!r}")
        with self.transaction():
            clashes = self.sample_tool_clashes(specs, source=source)  # one pass over the samples for the batch
            if on_duplicate != "skip" and (clash := next((c for c in clashes if c is not None), None)):
                raise StoreError(clash)
            return [None if clash is not None else
                    self.upsert_tool(s, domain=domain, source=source, tree_path=tree_path, on_duplicate=on_duplicate,
                                     check_samples=False)
                    for s, clash in zip(specs, clashes, strict=True)]

    def _sample_tools(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The tools of those names that stored samples offer: one row per name and parameter schema,
        with how many samples offer it, one of them, and whether any is a templated sample."""
        return self._rows(
            "SELECT json_extract(j.value, '$.name') AS name, json_extract(j.value, '$.parameters') AS parameters, "
            "       count(DISTINCT s.id) AS samples, min(s.id) AS sample_id, "
            "       max(coalesce(s.scenario, '') LIKE 'templated!_%' ESCAPE '!') AS templated "
            "FROM samples s, json_each(s.tools_json) j "
            "WHERE json_extract(j.value, '$.name') IN (SELECT value FROM json_each(?)) "
            "GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            [json.dumps(sorted(set(names)))],
        )

    def sample_tool_clashes(self, specs: Sequence[ToolSpec], *, source: str = "") -> list[str | None]:
        """For each spec, why its name is taken (one line), or None: stored samples offer a tool of
        that name with other parameters, so the policy would learn two tools under one name."""
        offered: dict[str, list[dict[str, Any]]] = {}
        for row in self._sample_tools([s.name for s in specs]):
            offered.setdefault(row["name"], []).append(row)
        out: list[str | None] = []
        for spec in specs:
            mine = canonical_json(spec.parameters)
            other = next((r for r in offered.get(spec.name, [])
                          if canonical_json(json.loads(r["parameters"] or "null")) != mine), None)
            out.append(None if other is None else (
                f"tool {spec.name!r} ({source or 'new'}) has other parameters than the tool {spec.name!r} that "
                f"{other['samples']} stored {'templated ' if other['templated'] else ''}samples offer (e.g. "
                f"{other['sample_id']}); a name is one tool: rename yours, or use a workspace without those samples"))
        return out

    def tool_clash(self, specs: Sequence[ToolSpec], *, source: str) -> str | None:
        """Why one of `specs` cannot join the workspace's data (one line), or None: the workspace has a
        tool of its name (the tools table) with other parameters. `source` names where the specs come from."""
        stored: dict[str, dict[str, Any]] = {}
        for record in self.tool_records():
            stored.setdefault(record["name"], record)
        for spec in specs:
            record = stored.get(spec.name)
            if record is not None and canonical_json(record["spec"].parameters) != canonical_json(spec.parameters):
                return (f"tool {spec.name!r} of {source} has other parameters than the workspace's tool {spec.name!r} "
                        f"(from {record['source'] or 'unknown'}, domain {record['domain']!r}); a name is one tool")
        return None

    def sample_tool_splits(self) -> dict[str, set[str]]:
        """Every tool name that stored samples offer, with the splits of those samples."""
        rows = self._rows("SELECT DISTINCT json_extract(j.value, '$.name') AS name, s.split AS split "
                          "FROM samples s, json_each(s.tools_json) j")
        out: dict[str, set[str]] = {}
        for row in rows:
            out.setdefault(row["name"], set()).add(row["split"])
        return out

    def get_tool(self, tool_id: str) -> ToolSpec:
        row = self._one("SELECT id, name, spec_json FROM tools WHERE id = ?", [tool_id])
        if row is None:
            raise KeyError(tool_id)
        spec = self._tool_spec(row)
        if spec is None:
            raise StoreError(f"tool {row['name']!r} ({tool_id}) in {self.path} no longer validates; {self._remove_hint(tool_id)}")
        return spec

    def tool_records(self, domain: str | None = None) -> list[dict[str, Any]]:
        """Every tool with its bookkeeping: id, name, domain, source, tree_path, spec (ToolSpec).

        A row that no longer validates (written by an older LoopTool, or edited by hand) is left
        out and reported through `warn`, so that one bad row cannot make the workspace unreadable.
        """
        where, params = ("WHERE domain = ?", [domain]) if domain is not None else ("", [])
        rows = self._rows(
            f"SELECT id, name, domain, source, tree_path, spec_json FROM tools {where} ORDER BY domain, name, id", params
        )
        records = []
        for row in rows:
            row["spec"] = self._tool_spec(row)
            row.pop("spec_json")
            if row["spec"] is not None:
                records.append(row)
        return records

    def _tool_spec(self, row: dict[str, Any]) -> ToolSpec | None:
        """The row's spec, or None (reported once) when it no longer validates."""
        try:
            return ToolSpec.model_validate_json(row["spec_json"])
        except ValueError as exc:  # pydantic's ValidationError, or JSON that does not parse
            if row["id"] not in self._skipped:
                self._skipped.add(row["id"])
                reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
                self.warn(f"skipping tool {row['name']!r} ({row['id']}): it no longer validates ({reason[:200]}); "
                          f"{self._remove_hint(row['id'])}")
            return None

    def _remove_hint(self, tool_id: str) -> str:
        return f"remove it with: sqlite3 {self.path} \"DELETE FROM tools WHERE id = '{tool_id}'\""

    # -- dialogues and messages ------------------------------------------------------------------

    def upsert_dialogue(self, d: Dialogue) -> None:
        """Store a dialogue's header; messages it carries are upserted at indexes 0..n-1."""
        now = utc_now()
        row = {"id": d.id, "plan_json": canonical_json(d.plan), "status": d.status, "error": d.error,
               "tool_ids_json": canonical_json(d.tool_ids), "thread_id": d.thread_id,
               "created_at": now, "updated_at": now}
        with self.transaction():
            self._upsert("dialogues", row, ("id",))
            if d.messages:
                self.add_messages(d.id, d.messages, 0)

    def set_dialogue_status(self, dialogue_id: str, status: DialogueStatus, error: str | None = None) -> None:
        if status not in get_args(DialogueStatus):
            raise ValueError(f"unknown dialogue status {status!r}")
        self._update("UPDATE dialogues SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                     [status, error, utc_now(), dialogue_id], dialogue_id)

    def get_dialogue(self, dialogue_id: str, *, with_messages: bool = True) -> Dialogue:
        """The dialogue, with its messages loaded unless `with_messages` is False."""
        r = self._one("SELECT * FROM dialogues WHERE id = ?", [dialogue_id])
        if r is None:
            raise KeyError(dialogue_id)
        return Dialogue(id=r["id"], plan=json.loads(r["plan_json"]), status=r["status"],
                        error=r["error"], tool_ids=json.loads(r["tool_ids_json"]),
                        thread_id=r["thread_id"], messages=self.messages(dialogue_id) if with_messages else [])

    def add_messages(self, dialogue_id: str, messages: Sequence[Message], start_idx: int, *,
                     model: str | None = None, latency_ms: float | None = None,
                     prompt_tokens: int | None = None, completion_tokens: int | None = None,
                     masked: bool = False) -> None:
        """Upsert messages at indexes start_idx, start_idx+1, ... with optional call metadata.

        `masked` marks an assistant turn whose self-consistency samples did not agree: it stays in
        the conversation but yields no training sample.
        """
        with self.transaction():
            for i, m in enumerate(messages, start=start_idx):
                row = {"dialogue_id": dialogue_id, "idx": i, "role": m.role, "agent": m.agent,
                       "content": m.content, "tool_calls_json": _dumps(m.tool_calls),
                       "tool_call_id": m.tool_call_id, "name": m.name, "model": model,
                       "latency_ms": latency_ms, "prompt_tokens": prompt_tokens,
                       "completion_tokens": completion_tokens, "masked": int(masked),
                       "created_at": utc_now()}
                self._upsert("messages", row, ("dialogue_id", "idx"))

    @staticmethod
    def _message(r: dict[str, Any]) -> Message:
        return Message(role=r["role"], content=r["content"], agent=r["agent"], name=r["name"],
                       tool_call_id=r["tool_call_id"],
                       tool_calls=[ToolCall.model_validate(c) for c in json.loads(r["tool_calls_json"])])

    def messages(self, dialogue_id: str) -> list[Message]:
        rows = self._rows("SELECT * FROM messages WHERE dialogue_id = ? ORDER BY idx", [dialogue_id])
        return [self._message(r) for r in rows]

    def message_rows(self, dialogue_id: str) -> list[dict[str, Any]]:
        """Messages with their bookkeeping: idx, message (Message), masked, model, latency_ms, tokens."""
        rows = self._rows("SELECT * FROM messages WHERE dialogue_id = ? ORDER BY idx", [dialogue_id])
        return [{"idx": r["idx"], "message": self._message(r), "masked": bool(r["masked"]), "model": r["model"],
                 "latency_ms": r["latency_ms"], "prompt_tokens": r["prompt_tokens"],
                 "completion_tokens": r["completion_tokens"]} for r in rows]

    # -- agent traces ----------------------------------------------------------------------------

    def upsert_trace(self, dialogue_id: str, call_key: str, *, agent: str, role: str, prompt_ref: str,
                     status: str, msg_idx: int | None = None, raw: str | None = None,
                     parsed: Any = None, error: str | None = None, model: str | None = None,
                     latency_ms: float | None = None, prompt_tokens: int | None = None,
                     completion_tokens: int | None = None) -> None:
        """Record one agent call of a dialogue under its key (a re-run call overwrites its row)."""
        row = {"dialogue_id": dialogue_id, "call_key": call_key, "msg_idx": msg_idx, "agent": agent,
               "role": role, "prompt_ref": prompt_ref, "raw": raw,
               "parsed_json": None if parsed is None else canonical_json(parsed), "status": status,
               "error": error, "model": model, "latency_ms": latency_ms, "prompt_tokens": prompt_tokens,
               "completion_tokens": completion_tokens, "created_at": utc_now()}
        self._upsert("traces", row, ("dialogue_id", "call_key"))

    def reset_dialogue(self, dialogue_id: str) -> None:
        """Forget a dialogue's messages, traces and samples (it is about to be made anew)."""
        with self.transaction():
            for table in ("messages", "traces", "samples"):
                self.db.execute(f"DELETE FROM {table} WHERE dialogue_id = ?", [dialogue_id])

    def clear_traces(self, dialogue_id: str, prefix: str) -> None:
        """Forget the calls whose key starts with `prefix` + "." (before a node records them anew,
        so a re-run node leaves no stale attempts behind)."""
        with self.transaction():
            self.db.execute("DELETE FROM traces WHERE dialogue_id = ? AND substr(call_key, 1, ?) = ?",
                            [dialogue_id, len(prefix) + 1, prefix + "."])

    def set_dialogue_samples(self, dialogue_id: str, samples: Sequence[Sample]) -> None:
        """Make `samples` the dialogue's samples (replacing any from an earlier run)."""
        with self.transaction():
            self.db.execute("DELETE FROM samples WHERE dialogue_id = ?", [dialogue_id])
            for s in samples:
                self.upsert_sample(s)

    def traces(self, dialogue_id: str) -> list[dict[str, Any]]:
        """The agent calls of a dialogue in the order they were made; `parsed` is decoded JSON."""
        rows = self._rows("SELECT * FROM traces WHERE dialogue_id = ? ORDER BY created_at, call_key", [dialogue_id])
        for r in rows:
            r["parsed"] = None if r["parsed_json"] is None else json.loads(r.pop("parsed_json"))
            r.pop("parsed_json", None)
        return rows

    # -- the loop agents' calls (judge, expander) ------------------------------------------------

    def record_agent_calls(self, subject: str, key: str, calls: Sequence[dict[str, Any]], *,
                           sample_id: str | None = None, round: int | None = None) -> None:
        """Record the model calls of one agent turn about `subject` under `key` ("v0", "check"):
        each dict has agent, prompt_ref, prompt, status and optionally raw, parsed, error, model,
        latency_ms, prompt_tokens, completion_tokens. Earlier calls under the same key are replaced
        (a turn asked again after a kill leaves no stale attempts)."""
        with self.transaction():
            self.db.execute("DELETE FROM agent_calls WHERE subject = ? AND substr(call_key, 1, ?) = ?",
                            [subject, len(key) + 1, key + "."])
            for a, call in enumerate(calls):
                parsed = call.get("parsed")
                row = {"subject": subject, "call_key": f"{key}.a{a}", "sample_id": sample_id, "round": round,
                       "agent": call["agent"], "prompt_ref": call["prompt_ref"], "prompt": call.get("prompt"),
                       "raw": call.get("raw"), "parsed_json": None if parsed is None else canonical_json(parsed),
                       "status": call["status"], "error": call.get("error"), "model": call.get("model"),
                       "latency_ms": call.get("latency_ms"), "prompt_tokens": call.get("prompt_tokens"),
                       "completion_tokens": call.get("completion_tokens"), "created_at": utc_now()}
                self._upsert("agent_calls", row, ("subject", "call_key"))

    def agent_calls(self, *, subject: str | None = None, sample_id: str | None = None,
                    round: int | None = None) -> list[dict[str, Any]]:
        """Recorded loop-agent calls, in the order they were made, filtered by whichever of
        subject, sample_id and round is given; `parsed` is decoded JSON."""
        filters = {"subject": subject, "sample_id": sample_id, "round": round}
        conds = [f"{k} = ?" for k, v in filters.items() if v is not None] or ["1 = 1"]
        rows = self._rows(f"SELECT * FROM agent_calls WHERE {' AND '.join(conds)} ORDER BY created_at, subject, "
                          "call_key", [v for v in filters.values() if v is not None])
        for r in rows:
            r["parsed"] = None if r["parsed_json"] is None else json.loads(r["parsed_json"])
            r.pop("parsed_json", None)
        return rows

    # -- samples ---------------------------------------------------------------------------------

    def upsert_sample(self, s: Sample) -> None:
        now = utc_now()
        row = {"id": s.id, "dialogue_id": s.dialogue_id, "parent_id": s.parent_id, "origin": s.origin,
               "round_added": s.round_added, "messages_json": _dumps(s.messages),
               "tools_json": _dumps(s.tools), "label_json": _dump(s.label),
               "label_version": s.label_version, "active": int(s.active), "split": s.split,
               "scenario": s.scenario, "exact": int(s.exact), "created_at": now, "updated_at": now}
        self._upsert("samples", row, ("id",))

    def upsert_samples(self, samples: Sequence[Sample]) -> None:
        """Store several samples in one transaction: all or none."""
        with self.transaction():
            for s in samples:
                self.upsert_sample(s)

    def has_sample(self, sample_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM samples WHERE id = ?", [sample_id]))

    def sample_ids_matching(self, prefix: str, limit: int = 10) -> list[str]:
        """The sample ids a user's `prefix` names, as `schema.ids_matching` reads it: the id equal to
        it, else the ids that start with it (at most `limit`, in order)."""
        if self.has_sample(prefix):
            return [prefix]
        rows = self._rows("SELECT id FROM samples WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
                          [len(prefix), prefix, int(limit)])
        return [r["id"] for r in rows]

    def add_new_samples(self, samples: Sequence[Sample]) -> int:
        """Store the samples not stored yet, in one transaction; stored ones are left as they are
        (a corrected label or a deactivation stays). Returns how many were added."""
        added = 0
        with self.transaction():
            for s in samples:
                if not self.has_sample(s.id):
                    self.upsert_sample(s)
                    added += 1
        return added

    @staticmethod
    def _sample(r: dict[str, Any]) -> Sample:
        return Sample(id=r["id"], dialogue_id=r["dialogue_id"], parent_id=r["parent_id"],
                      origin=r["origin"], round_added=r["round_added"],
                      messages=json.loads(r["messages_json"]), tools=json.loads(r["tools_json"]),
                      label=json.loads(r["label_json"]), label_version=r["label_version"],
                      active=bool(r["active"]), split=r["split"], scenario=r["scenario"], exact=bool(r["exact"]))

    def get_sample(self, sample_id: str) -> Sample:
        r = self._one("SELECT * FROM samples WHERE id = ?", [sample_id])
        if r is None:
            raise KeyError(sample_id)
        return self._sample(r)

    def iter_samples(self, *, origin: str | None = None, round_added: int | None = None,
                     active: bool | None = None, split: str | None = None,
                     dialogue_id: str | None = None, page: int = 500) -> Iterator[Sample]:
        """Samples ordered by id, filtered by whichever arguments are given, read page by page."""
        filters = {"origin": origin, "round_added": round_added,
                   "active": None if active is None else int(active), "split": split,
                   "dialogue_id": dialogue_id}
        conds = [f"{k} = ?" for k, v in filters.items() if v is not None]
        params = [v for v in filters.values() if v is not None]
        last = ""
        while True:
            rows = self._rows(f"SELECT * FROM samples WHERE {' AND '.join(conds + ['id > ?'])} "
                              f"ORDER BY id LIMIT {int(page)}", params + [last])
            yield from (self._sample(r) for r in rows)
            if len(rows) < page:
                return
            last = rows[-1]["id"]

    def set_sample_label(self, sample_id: str, label: Label, *, reason: str = "") -> None:
        """Replace a sample's label and bump its label_version by one; the old label goes to the
        label history, in the same transaction."""
        with self.transaction():
            now = utc_now()
            self.db.execute("INSERT INTO label_history (sample_id, label_version, label_json, replaced_at, reason) "
                            "SELECT id, label_version, label_json, ?, ? FROM samples WHERE id = ?",
                            [now, reason, sample_id])
            self._update("UPDATE samples SET label_json = ?, label_version = label_version + 1, "
                         "updated_at = ? WHERE id = ?", [_dump(label), now, sample_id], sample_id)

    def add_expansion(self, parent_id: str, round: int, slot: int, *, status: str, dimension: str,
                      sample: Sample | None = None, detail: str | None = None) -> None:
        """Record one expansion attempt, and its sample when kept, in one transaction."""
        with self.transaction():
            if sample is not None:
                self.upsert_sample(sample)
            self.db.execute("INSERT OR REPLACE INTO expansions (parent_id, round, slot, status, sample_id, dimension, "
                            "detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [parent_id, round, slot, status, sample.id if sample else None, dimension, detail,
                             utc_now()])

    def expansion_slots(self, round: int) -> set[tuple[str, int]]:
        """(parent id, slot) of every expansion attempt of the round."""
        return {(r["parent_id"], r["slot"]) for r in
                self._rows("SELECT parent_id, slot FROM expansions WHERE round = ?", [round])}

    def expansion_counts(self, round: int) -> dict[str, int]:
        """Expansion attempts of the round by status (kept, invalid, rejected, duplicate)."""
        return self._count_by("SELECT status AS k, count(*) AS c FROM expansions WHERE round = ? GROUP BY status",
                              [round])

    def has_label_change(self, sample_id: str, reason: str) -> bool:
        """Whether the sample's label was replaced for this reason (a correction is applied once)."""
        return bool(self._rows("SELECT 1 FROM label_history WHERE sample_id = ? AND reason = ?", [sample_id, reason]))

    def label_history(self, sample_id: str) -> list[dict[str, Any]]:
        """The labels a sample had before its current one, oldest first: version, label, when, why."""
        rows = self._rows("SELECT * FROM label_history WHERE sample_id = ? ORDER BY label_version", [sample_id])
        return [{"label_version": r["label_version"], "label": Label.model_validate_json(r["label_json"]),
                 "replaced_at": r["replaced_at"], "reason": r["reason"]} for r in rows]

    def set_sample_active(self, sample_id: str, active: bool) -> None:
        self._update("UPDATE samples SET active = ?, updated_at = ? WHERE id = ?",
                     [int(active), utc_now(), sample_id], sample_id)

    # -- probes and verdicts ---------------------------------------------------------------------

    def upsert_probe(self, p: Probe) -> None:
        pred = None if p.prediction is None else _dumps(p.prediction)
        row = {"sample_id": p.sample_id, "round": p.round, "prediction_json": pred, "raw": p.raw,
               "correct": int(p.correct), "ppl": p.ppl, "category": p.category}
        self._upsert("probes", row, ("sample_id", "round"))

    def set_probe_categories(self, round: int, categories: dict[str, str]) -> None:
        """Set the category of the round's probes, all in one transaction."""
        with self.transaction():
            for sample_id, category in categories.items():
                self.db.execute("UPDATE probes SET category = ? WHERE round = ? AND sample_id = ?",
                                [category, round, sample_id])

    def clear_probes(self, round: int) -> None:
        """Forget the round's probes (its adapter was trained again)."""
        with self.transaction():
            self.db.execute("DELETE FROM probes WHERE round = ?", [round])

    def probes(self, round: int, category: str | None = None) -> list[Probe]:
        where, params = "round = ?", [round]
        if category is not None:
            where, params = where + " AND category = ?", params + [category]
        rows = self._rows(f"SELECT * FROM probes WHERE {where} ORDER BY sample_id", params)
        return [_probe(r) for r in rows]

    def upsert_verdict(self, v: Verdict) -> None:
        """Store a verdict; without a label version it is about the sample's label as it is now."""
        label = None if v.corrected_label is None else _dump(v.corrected_label)
        version = v.label_version
        if version is None:
            current = self._one("SELECT label_version FROM samples WHERE id = ?", [v.sample_id])
            version = None if current is None else current["label_version"]
        row = {"sample_id": v.sample_id, "round": v.round, "verdict": v.verdict,
               "corrected_label_json": label, "rationale": v.rationale, "judge_model": v.judge_model,
               "human_override": v.human_override, "basis": v.basis, "label_version": version,
               "created_at": utc_now()}
        self._upsert("verdicts", row, ("sample_id", "round"))

    def verdicts(self, round: int) -> list[Verdict]:
        rows = self._rows("SELECT * FROM verdicts WHERE round = ? ORDER BY sample_id", [round])
        return [_verdict(r) for r in rows]

    def verdict_rounds(self) -> list[int]:
        """The rounds that have verdicts, in order."""
        return [r["round"] for r in self._rows("SELECT DISTINCT round FROM verdicts ORDER BY round")]

    def set_human_override(self, sample_id: str, round: int, verdict_kind: VerdictKind | None) -> None:
        """Record (or, with None, clear) a human's verdict that overrides the judge's."""
        self.set_human_overrides(round, {sample_id: verdict_kind})

    def set_human_overrides(self, round: int, decisions: dict[str, VerdictKind | None]) -> None:
        """Record several people's verdicts (None clears one) on a round's verdicts, all or none:
        every decision is checked before the first is written, and they are written in one
        transaction. StoreError names what is wrong."""
        bad = {k for k in decisions.values() if k is not None and k not in get_args(VerdictKind)}
        if bad:
            raise StoreError(f"unknown verdict {sorted(bad)[0]!r}; use {', '.join(get_args(VerdictKind))}")
        with self.transaction():
            have = {r["sample_id"] for r in self._rows("SELECT sample_id FROM verdicts WHERE round = ?", [round])}
            missing = sorted(set(decisions) - have)
            if missing:
                raise StoreError(f"round {round} has no verdict on sample {missing[0]}")
            for sample_id, kind in decisions.items():
                self.db.execute("UPDATE verdicts SET human_override = ? WHERE sample_id = ? AND round = ?",
                                [kind, sample_id, round])

    def person_decision(self, sample_id: str, label_version: int, before_round: int) -> Verdict | None:
        """The latest verdict before `before_round` on this version of the sample's label that a
        person overrode at review (its `human_override` is the decision), or None."""
        r = self._one("SELECT * FROM verdicts WHERE sample_id = ? AND label_version = ? AND round < ? "
                      "AND human_override IS NOT NULL ORDER BY round DESC LIMIT 1",
                      [sample_id, label_version, before_round])
        return None if r is None else _verdict(r)

    # -- rounds and events -----------------------------------------------------------------------

    def upsert_round(self, r: Round) -> None:
        row = {"n": r.n, "status": r.status, "stage": r.stage, "started_at": r.started_at,
               "finished_at": r.finished_at, "adapter_path": r.adapter_path,
               "data_ids_json": canonical_json(r.data_ids), "metrics_json": canonical_json(r.metrics)}
        self._upsert("rounds", row, ("n",))

    @staticmethod
    def _round(r: dict[str, Any]) -> Round:
        return Round(n=r["n"], status=r["status"], stage=r["stage"], started_at=r["started_at"],
                     finished_at=r["finished_at"], adapter_path=r["adapter_path"],
                     data_ids=json.loads(r["data_ids_json"]), metrics=json.loads(r["metrics_json"]))

    def get_round(self, n: int) -> Round | None:
        r = self._one("SELECT * FROM rounds WHERE n = ?", [n])
        return None if r is None else self._round(r)

    def rounds(self) -> list[Round]:
        return [self._round(r) for r in self._rows("SELECT * FROM rounds ORDER BY n")]

    def log_event(self, level: str, stage: str, message: str) -> int:
        """Append to the event log; returns the event id."""
        with self.transaction():
            cur = self.db.execute("INSERT INTO events (ts, level, stage, message) VALUES (?, ?, ?, ?)",
                                  [utc_now(), level, stage, message])
            return int(cur.lastrowid)

    def events(self, limit: int = 100, since_id: int = 0) -> list[dict[str, Any]]:
        """The newest `limit` events with id > since_id, oldest first (for tailing a log)."""
        rows = self._rows("SELECT id, ts, level, stage, message FROM events WHERE id > ? "
                          "ORDER BY id DESC LIMIT ?", [since_id, limit])
        return rows[::-1]

    # -- evaluation ------------------------------------------------------------------------------

    def upsert_eval_run(self, run_id: str, *, suite: str, model: str, adapter: str | None, round: int | None,
                        settings: dict[str, Any]) -> None:
        now = utc_now()
        self._upsert("eval_runs", {"id": run_id, "suite": suite, "model": model, "adapter": adapter, "round": round,
                                   "settings_json": canonical_json(settings), "created_at": now, "updated_at": now},
                     ("id",))

    def eval_runs(self, suite: str | None = None) -> list[dict[str, Any]]:
        """Runs, by round (base model first) then age; `settings` decoded."""
        where, params = ("WHERE suite = ?", [suite]) if suite else ("", [])
        rows = self._rows(f"SELECT * FROM eval_runs {where} ORDER BY coalesce(round, -1), created_at", params)
        for r in rows:
            r["settings"] = json.loads(r.pop("settings_json"))
        return rows

    def delete_eval_run(self, run_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM eval_runs WHERE id = ?", [run_id])

    def add_eval_results(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store scored entries (upserts: an entry scored again replaces its row) in one transaction.

        Each row has entry_id, category, output, decoded (any JSON value or None), passed, error_type,
        error, latency_ms, prompt_tokens, completion_tokens.
        """
        now = utc_now()
        with self.transaction():
            for r in rows:
                row = {"run_id": run_id, "entry_id": r["entry_id"], "category": r["category"],
                       "output": r.get("output"), "decoded_json": None if r.get("decoded") is None
                       else json.dumps(r["decoded"], ensure_ascii=False, default=repr),
                       "passed": int(bool(r["passed"])), "error_type": r.get("error_type"), "error": r.get("error"),
                       "latency_ms": r.get("latency_ms"), "prompt_tokens": r.get("prompt_tokens"),
                       "completion_tokens": r.get("completion_tokens"), "created_at": now}
                self._upsert("eval_results", row, ("run_id", "entry_id"))
            self.db.execute("UPDATE eval_runs SET updated_at = ? WHERE id = ?", [now, run_id])

    def prune_eval_results(self, run_id: str, keep: set[str]) -> int:
        """Delete a run's rows whose entry is not in `keep`; returns how many went."""
        stale = self.scored_entry_ids(run_id) - keep
        with self.transaction():
            for entry_id in stale:
                self.db.execute("DELETE FROM eval_results WHERE run_id = ? AND entry_id = ?", [run_id, entry_id])
        return len(stale)

    def scored_entry_ids(self, run_id: str) -> set[str]:
        return {r["entry_id"] for r in self._rows("SELECT entry_id FROM eval_results WHERE run_id = ?", [run_id])}

    def eval_results(self, run_id: str, category: str | None = None, *, failed_only: bool = False) -> list[dict[str, Any]]:
        """Scored entries of a run in entry order; `decoded` decoded."""
        sql, params = "SELECT * FROM eval_results WHERE run_id = ?", [run_id]
        if category:
            sql, params = sql + " AND category = ?", params + [category]
        if failed_only:
            sql += " AND passed = 0"
        rows = self._rows(sql + " ORDER BY category, entry_id", params)
        for r in rows:
            raw = r.pop("decoded_json")
            r["decoded"] = None if raw is None else json.loads(raw)
        return rows

    def eval_error_counts(self, run_id: str) -> dict[str, int]:
        """Failed entries of a run by error type."""
        return self._count_by("SELECT error_type AS k, count(*) AS c FROM eval_results WHERE run_id = ? AND passed = 0 "
                              "GROUP BY k ORDER BY c DESC", [run_id])

    def update_eval_scores(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Recompute a run's per-category scores from its entries; returns them.

        `errors` counts entries that got no answer to score (the server refused the request, e.g. a
        prompt longer than the context); they count as failed, and are shown so they are not hidden.
        """
        now = utc_now()
        with self.transaction():
            self.db.execute("DELETE FROM eval_scores WHERE run_id = ?", [run_id])
            self.db.execute(
                "INSERT INTO eval_scores (run_id, category, total, passed, accuracy, errors, updated_at) "
                "SELECT run_id, category, count(*), sum(passed), 1.0 * sum(passed) / count(*), "
                "sum(coalesce(error_type, '') LIKE 'inference_error%'), ? FROM eval_results WHERE run_id = ? "
                "GROUP BY category", [now, run_id])
        return self.eval_scores(run_id)

    def eval_scores(self, run_id: str) -> dict[str, dict[str, Any]]:
        """category -> {total, passed, accuracy, errors}."""
        return {r["category"]: {k: r[k] for k in ("total", "passed", "accuracy", "errors")}
                for r in self._rows("SELECT * FROM eval_scores WHERE run_id = ? ORDER BY category", [run_id])}

    # -- training --------------------------------------------------------------------------------

    def add_train_step(self, round: int, stage: str, step: int, metrics: dict[str, Any]) -> None:
        self._upsert("train_steps", {"round": round, "stage": stage, "step": step,
                                     "metrics_json": canonical_json(metrics), "created_at": utc_now()},
                     ("round", "stage", "step"))

    def train_steps(self, round: int, stage: str) -> list[dict[str, Any]]:
        """Logged steps of a round's run, in order: step plus the metrics."""
        rows = self._rows("SELECT step, metrics_json FROM train_steps WHERE round = ? AND stage = ? ORDER BY step",
                          [round, stage])
        return [{"step": r["step"], **json.loads(r["metrics_json"])} for r in rows]

    def clear_train_steps(self, round: int, stage: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM train_steps WHERE round = ? AND stage = ?", [round, stage])

    # -- copies ----------------------------------------------------------------------------------

    def backup_to(self, path: str | Path) -> None:
        """A consistent copy of the whole database into a new file (SQLite's online backup)."""
        dest = sqlite3.connect(str(path))
        try:
            with self._lock:
                self.db.conn.backup(dest)
        finally:
            dest.close()

    def reset_to_seed(self, keep_round: int | None = None, *, keep_probes: bool = False) -> None:
        """Undo what the loop did to this database (meant for a copy): seed labels and samples back
        as they were, expansions gone, no verdicts, label history or loop-agent traces; rounds, their
        logged training steps and evaluations (and, with `keep_probes`, their probes) kept only up
        to `keep_round` (none when None)."""
        keep = keep_round or 0
        with self.transaction():
            first = ("(SELECT {col} FROM label_history h WHERE h.sample_id = samples.id "
                     "ORDER BY h.label_version LIMIT 1)")
            self.db.execute(f"UPDATE samples SET label_json = {first.format(col='label_json')}, "
                            f"label_version = {first.format(col='label_version')} "
                            "WHERE id IN (SELECT sample_id FROM label_history)")
            # Only the verify stage deactivates samples (BOTH_WRONG).
            self.db.execute("UPDATE samples SET active = 1 WHERE id IN (SELECT sample_id FROM verdicts)")
            self.db.execute("DELETE FROM probes WHERE round > ?", [keep if keep_probes else 0])
            for statement in ("DELETE FROM label_history", "DELETE FROM verdicts",
                              "DELETE FROM expansions", "DELETE FROM agent_calls",
                              "DELETE FROM samples WHERE origin != 'seed'"):
                self.db.execute(statement)
            self.db.execute("DELETE FROM rounds WHERE n > ?", [keep])
            self.db.execute("DELETE FROM train_steps WHERE round > ?", [keep])
            self.db.execute("DELETE FROM eval_runs WHERE round > ?", [keep])

    # -- read models for the TUI -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Row count of every LoopTool table."""
        return {t: self._one(f"SELECT count(*) AS c FROM {t}")["c"] for t in TABLES}  # type: ignore[index]

    def sample_counts_by_origin(self, active_only: bool = True) -> dict[str, int]:
        where = "WHERE active = 1" if active_only else ""
        return self._count_by(f"SELECT origin AS k, count(*) AS c FROM samples {where} GROUP BY origin")

    def sample_counts_by_round(self, active_only: bool = True) -> dict[int, int]:
        where = "WHERE active = 1" if active_only else ""
        return self._count_by(f"SELECT round_added AS k, count(*) AS c FROM samples {where} "
                              "GROUP BY round_added ORDER BY round_added")

    def dialogue_counts_by_status(self) -> dict[str, int]:
        return self._count_by("SELECT status AS k, count(*) AS c FROM dialogues GROUP BY status")

    def dialogue_rows(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Dialogue headers (no messages), oldest first: id, status, error, scenario, split,
        message and sample counts, updated_at."""
        where, params = ("WHERE d.status = ?", [status]) if status else ("", [])
        rows = self._rows(
            "SELECT d.id, d.status, d.error, d.updated_at, json_extract(d.plan_json, '$.scenario') AS scenario, "
            "json_extract(d.plan_json, '$.split') AS split, "
            "(SELECT count(*) FROM messages m WHERE m.dialogue_id = d.id) AS n_messages, "
            "(SELECT count(*) FROM samples s WHERE s.dialogue_id = d.id) AS n_samples "
            f"FROM dialogues d {where} ORDER BY d.created_at, d.id" + (f" LIMIT {int(limit)}" if limit else ""),
            params)
        return rows

    def dialogue_counts_by_scenario(self, status: str = "done") -> dict[str, int]:
        return self._count_by("SELECT json_extract(plan_json, '$.scenario') AS k, count(*) AS c FROM dialogues "
                              "WHERE status = ? GROUP BY k", [status])

    def dialogue_errors(self) -> dict[str, int]:
        """Why dialogues were dropped: reason -> count."""
        return self._count_by("SELECT coalesce(error, '') AS k, count(*) AS c FROM dialogues "
                              "WHERE status = 'dropped' GROUP BY k ORDER BY c DESC")

    def sample_counts_by_split(self, active_only: bool = True) -> dict[str, int]:
        where = "WHERE active = 1" if active_only else ""
        return self._count_by(f"SELECT split AS k, count(*) AS c FROM samples {where} GROUP BY split")

    def tool_sample_splits(self, active_only: bool = True) -> dict[str, dict[str, int]]:
        """Tool name -> split -> how many samples offer that tool. The split is by tool, so a tool
        should be offered in one split only: a held-out tool by held-out samples alone."""
        where = "WHERE s.active = 1" if active_only else ""
        rows = self._rows("SELECT json_extract(t.value, '$.name') AS name, s.split AS split, count(*) AS c "
                          f"FROM samples s, json_each(s.tools_json) t {where} GROUP BY name, split ORDER BY name")
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["name"], {})[r["split"]] = r["c"]
        return out

    def probe_counts_by_category(self, round: int) -> dict[str, int]:
        """Probes of a round per category; uncategorised probes count under 'none'."""
        return self._count_by("SELECT coalesce(category, 'none') AS k, count(*) AS c FROM probes "
                              "WHERE round = ? GROUP BY k", [round])

    def verdict_bases(self, round: int) -> dict[str, int]:
        """How a round's verdicts were reached: counts by basis (judge / rule / no_answer / person),
        "by_person": verdicts a person decided (an override in this round's review, or an earlier
        decision kept for the same label), and "label_wrong_on_exact": effective LABEL_WRONG verdicts
        on samples whose label is exact by construction (the judge is never asked about those, so only
        a person's override can make one)."""
        counts = self._count_by("SELECT basis AS k, count(*) AS c FROM verdicts WHERE round = ? GROUP BY basis", [round])
        person = self._one("SELECT count(*) AS c FROM verdicts WHERE round = ? "
                           "AND (human_override IS NOT NULL OR basis = 'person')", [round])
        row = self._one("SELECT count(*) AS c FROM verdicts v JOIN samples s ON s.id = v.sample_id WHERE v.round = ? "
                        "AND s.exact = 1 AND coalesce(v.human_override, v.verdict) = 'LABEL_WRONG'", [round])
        return {**counts, "by_person": person["c"] if person else 0, "label_wrong_on_exact": row["c"] if row else 0}

    def verdict_counts(self, round: int) -> dict[str, int]:
        """Verdicts of a round per effective kind (a human override wins over the judge)."""
        return self._count_by("SELECT coalesce(human_override, verdict) AS k, count(*) AS c "
                              "FROM verdicts WHERE round = ? GROUP BY k", [round])

    # -- read models for the terminal UI ---------------------------------------------------------

    def has_table(self, name: str) -> bool:
        """Whether the file holds a table of this name (LangGraph's checkpoint tables appear only
        once a graph has run)."""
        return self._one("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [name]) is not None

    def activity_marks(self) -> tuple[Any, ...]:
        """A cheap fingerprint of everything the dashboard shows: it changes whenever a round row,
        the event log, a training step, a probe, a verdict, an expansion or an evaluation result
        changes, so a reader can skip a full refresh while it stays the same."""
        row = self._one(
            "SELECT (SELECT coalesce(max(id), 0) FROM events) AS events, "
            "(SELECT group_concat(n || ':' || status || ':' || coalesce(stage, '') || ':' || length(metrics_json) "
            "|| ':' || length(data_ids_json), ',') FROM rounds) AS rounds, "
            "(SELECT count(*) FROM train_steps) AS steps, (SELECT count(*) FROM probes) AS probes, "
            "(SELECT count(*) FROM verdicts) AS verdicts, "
            "(SELECT count(*) || ':' || coalesce(group_concat(CASE WHEN human_override IS NOT NULL THEN "
            "sample_id || '@' || round || '=' || human_override END, ','), '') FROM verdicts) AS overrides, "
            "(SELECT count(*) FROM expansions) AS expansions, "
            "(SELECT count(*) FROM eval_results) AS results")
        return tuple(row.values()) if row else ()

    def round_activity(self, round: int) -> dict[str, int]:
        """Rows the stages of a round have written so far, to measure a running stage's progress:
        GRPO steps and SFT warm-start steps logged, probes and failed probes, verdicts and expansion
        seeds (PRED_WRONG or LABEL_WRONG after any override), expansion attempts, and evaluation
        results of the round's runs."""
        row = self._one(
            "SELECT (SELECT count(*) FROM train_steps WHERE round = :r AND stage = 'grpo') AS train_steps, "
            "(SELECT count(*) FROM train_steps WHERE round = :r AND stage = 'sft') AS sft_steps, "
            "(SELECT count(*) FROM probes WHERE round = :r) AS probes, "
            "(SELECT count(*) FROM probes WHERE round = :r AND category = 'failed') AS failed, "
            "(SELECT count(*) FROM verdicts WHERE round = :r) AS verdicts, "
            "(SELECT count(*) FROM verdicts WHERE round = :r AND coalesce(human_override, verdict) IN ('PRED_WRONG', "
            "'LABEL_WRONG')) "
            "AS errors, (SELECT count(*) FROM expansions WHERE round = :r) AS expansions, "
            "(SELECT count(*) FROM eval_results WHERE run_id IN (SELECT id FROM eval_runs WHERE round = :r)) "
            "AS eval_results", {"r": round})
        return dict(row) if row else {}

    def all_train_steps(self, stage: str = "grpo") -> list[dict[str, Any]]:
        """Every logged step of every round's run of one stage, by round then step: round, step
        plus the metrics."""
        rows = self._rows("SELECT round, step, metrics_json FROM train_steps WHERE stage = ? ORDER BY round, step",
                          [stage])
        return [{"round": r["round"], "step": r["step"], **json.loads(r["metrics_json"])} for r in rows]

    def sample_filter_options(self) -> dict[str, list[Any]]:
        """The values the sample filters can take: rounds samples were added in, origins, scenarios,
        and the rounds that have probes."""
        return {
            "rounds": [r["k"] for r in self._rows("SELECT DISTINCT round_added AS k FROM samples ORDER BY k")],
            "origins": [r["k"] for r in self._rows("SELECT DISTINCT origin AS k FROM samples ORDER BY k")],
            "scenarios": [r["k"] for r in self._rows("SELECT DISTINCT scenario AS k FROM samples "
                                                     "WHERE scenario IS NOT NULL ORDER BY k")],
            "probe_rounds": [r["k"] for r in self._rows("SELECT DISTINCT round AS k FROM probes ORDER BY k")],
        }

    def sample_page(self, *, round_added: int | None = None, origin: str | None = None,
                    category: str | None = None, verdict: str | None = None, probe_round: int | None = None,
                    tool: str | None = None, scenario: str | None = None, split: str | None = None,
                    search: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of samples that pass every given filter, and how many pass in all.

        `category` (mastered / boundary / failed) and `verdict` (the effective one: a person's
        override wins) refer to `probe_round`, or to any round when it is None. `tool` is a tool
        name the sample offers; `split` is train or heldout; `search` is a case-insensitive
        substring of the id, the origin, the scenario, the context messages or the label JSON.
        Rows are headers (no messages): id, dialogue_id, parent_id,
        origin, round_added, split, scenario, active, label_version, label (Label), and the latest
        probe category and effective verdict (of `probe_round` when given). Ordered by round_added
        then id; only the page is read.
        """
        conds: list[str] = []
        params: dict[str, Any] = {"limit": int(limit), "offset": int(offset), "pr": probe_round}
        round_cond = "" if probe_round is None else " AND x.round = :pr"
        for column, value in (("round_added", round_added), ("origin", origin), ("scenario", scenario),
                              ("split", split)):
            if value is not None:
                conds.append(f"s.{column} = :{column}")
                params[column] = value
        if category is not None:
            conds.append(f"EXISTS (SELECT 1 FROM probes x WHERE x.sample_id = s.id AND x.category = :category"
                         f"{round_cond})")
            params["category"] = category
        if verdict is not None:
            conds.append("EXISTS (SELECT 1 FROM verdicts x WHERE x.sample_id = s.id "
                         f"AND coalesce(x.human_override, x.verdict) = :verdict{round_cond})")
            params["verdict"] = verdict
        if tool:
            conds.append("EXISTS (SELECT 1 FROM json_each(s.tools_json) t "
                         "WHERE json_extract(t.value, '$.name') = :tool)")
            params["tool"] = tool
        if search:
            conds.append("(s.id LIKE :search OR s.origin LIKE :search OR coalesce(s.scenario, '') LIKE :search "
                         "OR s.messages_json LIKE :search OR s.label_json LIKE :search)")
            params["search"] = f"%{search}%"
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        total = self._one(f"SELECT count(*) AS c FROM samples s {where}", params)["c"]  # type: ignore[index]
        latest = "(SELECT {col} FROM {table} x WHERE x.sample_id = s.id{cond} ORDER BY x.round DESC LIMIT 1)"
        rows = self._rows(
            "SELECT s.id, s.dialogue_id, s.parent_id, s.origin, s.round_added, s.split, s.scenario, s.active, "
            "s.label_version, s.label_json, "
            f"{latest.format(col='category', table='probes', cond=round_cond)} AS category, "
            f"{latest.format(col='coalesce(human_override, verdict)', table='verdicts', cond=round_cond)} AS verdict "
            f"FROM samples s {where} ORDER BY s.round_added, s.id LIMIT :limit OFFSET :offset", params)
        for r in rows:
            r["label"] = Label.model_validate_json(r.pop("label_json"))
            r["active"] = bool(r["active"])
        return rows, total

    def probes_for_sample(self, sample_id: str) -> list[Probe]:
        """Every probe of one sample, by round."""
        rows = self._rows("SELECT * FROM probes WHERE sample_id = ? ORDER BY round", [sample_id])
        return [_probe(r) for r in rows]

    def verdicts_for_sample(self, sample_id: str) -> list[Verdict]:
        """Every verdict on one sample, by round."""
        rows = self._rows("SELECT * FROM verdicts WHERE sample_id = ? ORDER BY round", [sample_id])
        return [_verdict(r) for r in rows]

    def expansions_of(self, parent_id: str) -> list[dict[str, Any]]:
        """The expansion attempts made from one error sample, by round then slot: round, slot,
        status, sample_id (when kept), dimension, detail."""
        return self._rows("SELECT round, slot, status, sample_id, dimension, detail FROM expansions "
                          "WHERE parent_id = ? ORDER BY round, slot", [parent_id])


def _probe(r: dict[str, Any]) -> Probe:
    return Probe(sample_id=r["sample_id"], round=r["round"], raw=r["raw"], correct=bool(r["correct"]),
                 ppl=r["ppl"], category=r["category"],
                 prediction=None if r["prediction_json"] is None else json.loads(r["prediction_json"]))


def _verdict(r: dict[str, Any]) -> Verdict:
    return Verdict(sample_id=r["sample_id"], round=r["round"], verdict=r["verdict"], rationale=r["rationale"],
                   judge_model=r["judge_model"], human_override=r["human_override"], basis=r["basis"],
                   label_version=r["label_version"],
                   corrected_label=None if r["corrected_label_json"] is None
                   else json.loads(r["corrected_label_json"]))
