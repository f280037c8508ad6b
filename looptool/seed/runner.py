"""Run the seed graph over many dialogues at once, resumably.

Dialogue `i` of a run with seed `s` always has the same id (and so the same checkpointer thread):
running `looptool seed` again skips finished dialogues, resumes unfinished ones from their last
checkpoint, and starts the rest. Up to `concurrency` dialogues are in flight together, which is
what lets the vLLM server batch their requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from looptool.config import DB_FILE, EMBEDDED_MODEL, ManagedModel, WorkspaceConfig
from looptool.policy.prompt import token_counter
from looptool.seed.graph import REASON_SEPARATOR, build_seed_graph, reason_kind
from looptool.seed.scenarios import NoToolsError, dialogue_id, stored_splits
from looptool.seed.state import SeedContext
from looptool.serving.client import resolve_endpoint
from looptool.store import Store

AGENTS = ("planner", "user", "assistant", "tool")


@dataclass
class SeedReport:
    n: int
    already: int = 0  # finished before this run
    done: int = 0  # verified in this run
    dropped: int = 0  # dropped in this run
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)
    drop_reasons: Counter = field(default_factory=Counter)  # by kind (see seed.graph.reason_kind)

    @property
    def finished(self) -> int:
        return self.already + self.done + self.dropped

    def per_minute(self) -> float:
        """Dialogues verified per minute in this run."""
        return self.done / max(time.monotonic() - self.started, 1e-9) * 60


def resolve_guidance(config: WorkspaceConfig) -> str:
    if config.seed.guidance != "auto":
        return config.seed.guidance
    role = config.role("assistant")
    return "grammar" if isinstance(role, ManagedModel) and role.model == EMBEDDED_MODEL else "hint"


def resolve_judge_check(config: WorkspaceConfig) -> bool:
    """Whether the judge checks the call turns of verified dialogues: 'auto' is on unless the judge
    is the embedded model, whose verdicts are not worth the dialogues they would drop."""
    if config.seed.judge_check != "auto":
        return config.seed.judge_check == "on"
    role = config.role("judge")
    return not (isinstance(role, ManagedModel) and role.model == EMBEDDED_MODEL)


def run_seed(
    workspace: Path,
    config: WorkspaceConfig,
    *,
    n: int,
    concurrency: int,
    seed: int = 0,
    on_progress: Callable[[SeedReport], None] = lambda report: None,
    log: Callable[[str], None] = print,
) -> SeedReport:
    """Make sure dialogues 0..n-1 of `seed` exist and are finished (verified or dropped)."""
    from looptool.checkpoint import open_checkpointer

    db_path = workspace / DB_FILE
    store = Store.open(db_path)
    saver = None
    try:
        records = store.tool_records()
        if not records:
            raise NoToolsError("the workspace has no tools; run 'looptool tools synth' or 'looptool tools import' first")
        records = stored_splits(records, store.sample_tool_splits())  # a tool keeps the split its samples have
        said: set[str] = set()  # agents sharing a server would each report it: say it once

        def log_once(line: str) -> None:
            if line not in said:
                said.add(line)
                log(line)

        endpoints = {agent: resolve_endpoint(config, agent, workspace, log=log_once) for agent in AGENTS}
        judge = resolve_endpoint(config, "judge", workspace, log=log_once) if resolve_judge_check(config) else None
        policy = config.role("policy")
        ctx = SeedContext(
            store=store, config=config.seed, endpoints=endpoints, guidance=resolve_guidance(config),  # type: ignore[arg-type]
            tool_records=records, seed=seed, judge=judge,
            count_tokens=token_counter(policy.model if isinstance(policy, ManagedModel) else None),
        )  # fmt: skip
        saver = open_checkpointer(db_path)
        return asyncio.run(_run(ctx, saver, n, concurrency, on_progress))
    finally:
        # Only now: asyncio.run has waited for the worker threads (sync nodes, checkpoint reads
        # and writes), also those of dialogues cancelled when another one failed, so no thread
        # uses a connection any more (closing one under a running query crashes the process).
        if saver is not None:
            saver.conn.close()
        store.close()


async def _run(ctx: SeedContext, saver, n: int, concurrency: int, on_progress) -> SeedReport:
    report = SeedReport(n=n)
    ids = [dialogue_id(ctx.seed, i) for i in range(n)]
    status = {r["id"]: r["status"] for r in ctx.store.dialogue_rows()}
    todo = [i for i in range(n) if status.get(ids[i]) not in ("done", "dropped")]
    report.already = n - len(todo)
    on_progress(report)
    limit = asyncio.Semaphore(concurrency)
    recursion_limit = 8 * ctx.config.max_messages + 20

    graph = build_seed_graph().compile(checkpointer=saver)

    async def one(i: int) -> None:
        async with limit:
            thread = {"configurable": {"thread_id": ids[i]}, "recursion_limit": recursion_limit}
            snapshot = await graph.aget_state(thread)
            # Resume any thread with a step to finish. Not `snapshot.next`: it leaves out tasks
            # whose writes are saved, so a kill between a step's writes and its checkpoint would
            # make it empty, and new input would restart the dialogue on stale channel state.
            start = None if snapshot.tasks else {"dialogue_id": ids[i], "index": i}
            report.in_flight += 1
            on_progress(report)
            try:
                out = await graph.ainvoke(start, thread, durability="sync", context=ctx)
            finally:
                report.in_flight -= 1
            if out.get("outcome") == "done":
                report.done += 1
            else:
                report.dropped += 1
                report.drop_reasons.update(map(reason_kind, (out.get("error") or "dropped").split(REASON_SEPARATOR)))
            on_progress(report)

    tasks = [asyncio.create_task(one(i)) for i in todo]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return report
