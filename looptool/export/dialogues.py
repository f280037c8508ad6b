"""The seed dialogues with their agent traces, as JSONL for inspection with other tools.

One line per dialogue (oldest first), holding what `looptool dialogues show --trace` prints:

* `id`, `status`, `error` (why it was dropped), `plan` (scenario, split, persona, goal, turns);
* `tools`: the tools it was made over, in OpenAI form (a tool no longer in the workspace is named
  with `"missing": true`);
* `turns`: its messages in order, each with the agent that wrote it, whether it was masked (its
  self-consistent samples disagreed: no training sample), and the model, latency and tokens of the
  call that made it; calls as `{"name", "arguments"}`;
* `traces`: every agent call made for it, in order: key, agent, role, prompt reference, status,
  error, raw output, parsed output, model, latency, tokens;
* `samples`: the ids of the samples made from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.config import DB_FILE
from looptool.export.files import ExportError, check_target, write_directory
from looptool.policy.prompt import openai_tool
from looptool.store import Store

DIALOGUES_FILE = "dialogues.jsonl"
TRACE_KEYS = ("call_key", "msg_idx", "agent", "role", "prompt_ref", "status", "error", "raw", "parsed", "model",
              "latency_ms", "prompt_tokens", "completion_tokens", "created_at")


def dialogue_record(store: Store, dialogue_id: str) -> dict[str, Any]:
    """One line of the export (see the module's docstring)."""
    d = store.get_dialogue(dialogue_id, with_messages=False)
    tools = []
    for tool_id in d.tool_ids:
        try:
            tools.append({"id": tool_id, **openai_tool(store.get_tool(tool_id))})
        except KeyError:
            tools.append({"id": tool_id, "missing": True})
    turns = []
    for row in store.message_rows(dialogue_id):
        m = row["message"]
        turns.append({"idx": row["idx"], "role": m.role, "agent": m.agent, "content": m.content,
                      "tool_calls": [c.model_dump() for c in m.tool_calls], "tool_call_id": m.tool_call_id,
                      "name": m.name, "masked": row["masked"], "model": row["model"], "latency_ms": row["latency_ms"],
                      "prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"]})
    return {"id": d.id, "status": d.status, "error": d.error, "plan": d.plan, "tools": tools, "turns": turns,
            "traces": [{k: t.get(k) for k in TRACE_KEYS} for t in store.traces(dialogue_id)],
            "samples": [s.id for s in store.iter_samples(dialogue_id=dialogue_id)]}


def export_dialogues(workspace: Path, target: Path, *, status: str | None = None, force: bool = False,
                     log: Callable[[str], None] = print) -> int:
    """Write the dialogues (those of `status` only, when given) to `target/dialogues.jsonl`;
    returns how many."""
    check_target(target, force=force)
    with Store.open(workspace / DB_FILE) as store:
        ids = [r["id"] for r in store.dialogue_rows(status)]
        if not ids:
            raise ExportError(f"no dialogues to export in {workspace}" + (f" with status {status}" if status else ""))

        def write(out: Path) -> None:
            log(f"writing {len(ids)} dialogues with their agent traces")
            with open(out / DIALOGUES_FILE, "w", encoding="utf-8") as f:
                for dialogue_id in ids:
                    f.write(json.dumps(dialogue_record(store, dialogue_id), ensure_ascii=False) + "\n")

        write_directory(target, write, force=force)
    return len(ids)
