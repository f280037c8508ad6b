"""The loop's rounds: probes, verdicts, the round rows and the event log."""

from __future__ import annotations

import json
from typing import Any, get_args

from ..schema import Probe, Round, Verdict, VerdictKind, canonical_json
from . import clock
from .base import StoreBase, _dump, _dumps
from .errors import StoreError


class RoundsMixin(StoreBase):
    """Probes and verdicts of each round, the rounds themselves, and the event log."""

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
               "created_at": clock.utc_now()}
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
               "data_ids_json": canonical_json(r.data_ids),
               "metrics_json": canonical_json(r.metrics.model_dump(mode="json"))}
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
                                  [clock.utc_now(), level, stage, message])
            return int(cur.lastrowid)

    def events(self, limit: int = 100, since_id: int = 0) -> list[dict[str, Any]]:
        """The newest `limit` events with id > since_id, oldest first (for tailing a log)."""
        rows = self._rows("SELECT id, ts, level, stage, message FROM events WHERE id > ? "
                          "ORDER BY id DESC LIMIT ?", [since_id, limit])
        return rows[::-1]



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
