"""Copies of a workspace database: a consistent backup, and a copy reset to its seed data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .base import StoreBase


class CopiesMixin(StoreBase):
    """A backup of the file, and undoing the loop on a copy."""

    # -- copies ----------------------------------------------------------------------------------

    def backup_to(self, path: str | Path) -> None:
        """A consistent copy of the whole database into a new file (SQLite's online backup)."""
        with self._file_errors(path):  # the copy cannot be made there (a missing folder, say)
            dest = sqlite3.connect(str(path))
        try:
            with self._lock, self._file_errors():
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
