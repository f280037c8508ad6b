"""The tables of the workspace database: SCHEMA_VERSION, the schema of version 1, and the
MIGRATIONS that bring an older file up to date (`StoreBase` runs them when it opens one).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

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
