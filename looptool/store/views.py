"""Read models: the counts, pages and fingerprints that the CLI and the terminal UI show."""

from __future__ import annotations

import json
from typing import Any

from ..schema import Label, Probe, Verdict
from .base import StoreBase
from .rounds import _probe, _verdict
from .schema import TABLES


class ViewsMixin(StoreBase):
    """Read-only queries shaped for display; nothing here writes."""

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
