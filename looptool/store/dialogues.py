"""Dialogues, their messages, the seed agents' traces, and the loop agents' (judge, expander) calls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, get_args

from ..schema import Dialogue, DialogueStatus, Message, ToolCall, canonical_json
from . import clock
from .base import StoreBase, _dumps


class DialoguesMixin(StoreBase):
    """Dialogues with their messages, and the model calls made for them and by the loop."""

    # -- dialogues and messages ------------------------------------------------------------------

    def upsert_dialogue(self, d: Dialogue) -> None:
        """Store a dialogue's header; messages it carries are upserted at indexes 0..n-1."""
        now = clock.utc_now()
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
                     [status, error, clock.utc_now(), dialogue_id], dialogue_id)

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
                       "created_at": clock.utc_now()}
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
               "completion_tokens": completion_tokens, "created_at": clock.utc_now()}
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
                       "completion_tokens": call.get("completion_tokens"), "created_at": clock.utc_now()}
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
