"""Evaluation runs with their scored entries and scores, and the logged training steps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..schema import canonical_json
from . import clock
from .base import StoreBase


class EvaluationMixin(StoreBase):
    """Evaluation runs, results and scores; training steps."""

    # -- evaluation ------------------------------------------------------------------------------

    def upsert_eval_run(self, run_id: str, *, suite: str, model: str, adapter: str | None, round: int | None,
                        settings: dict[str, Any]) -> None:
        now = clock.utc_now()
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
        now = clock.utc_now()
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
        now = clock.utc_now()
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
                                     "metrics_json": canonical_json(metrics), "created_at": clock.utc_now()},
                     ("round", "stage", "step"))

    def train_steps(self, round: int, stage: str) -> list[dict[str, Any]]:
        """Logged steps of a round's run, in order: step plus the metrics."""
        rows = self._rows("SELECT step, metrics_json FROM train_steps WHERE round = ? AND stage = ? ORDER BY step",
                          [round, stage])
        return [{"step": r["step"], **json.loads(r["metrics_json"])} for r in rows]

    def clear_train_steps(self, round: int, stage: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM train_steps WHERE round = ? AND stage = ?", [round, stage])
