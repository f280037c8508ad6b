"""Samples, the history of their labels, and the expansion attempts made from them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ..schema import Label, Sample
from . import clock
from .base import StoreBase, _dump, _dumps


class SamplesMixin(StoreBase):
    """Training samples, the history of their labels, and the expansions made from them."""

    # -- samples ---------------------------------------------------------------------------------

    def upsert_sample(self, s: Sample) -> None:
        now = clock.utc_now()
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
            now = clock.utc_now()
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
                             clock.utc_now()])

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
                     [int(active), clock.utc_now(), sample_id], sample_id)

    def set_dialogue_samples(self, dialogue_id: str, samples: Sequence[Sample]) -> None:
        """Make `samples` the dialogue's samples (replacing any from an earlier run)."""
        with self.transaction():
            self.db.execute("DELETE FROM samples WHERE dialogue_id = ?", [dialogue_id])
            for s in samples:
                self.upsert_sample(s)
