"""The tools table: tool specs by id, and the rule that a name is one tool."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ..schema import ToolSpec, canonical_json, stable_id
from . import clock
from .base import StoreBase, _dump
from .errors import StoreError


class ToolsMixin(StoreBase):
    """Tool specs: stored, checked against the samples' tools, read back."""

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
               "tree_path": tree_path, "created_at": clock.utc_now()}
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



def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}"
