"""Error-driven data expansion (EDDE) of one round: k new samples around every error sample.

An error sample is one the judge said the policy got wrong (PRED_WRONG, or a person's override to
it). For each, `[loop] expansions_per_error` slots are tried: the expander writes a new sample
(validated against the tools' schemas), then the judge checks its label; a sample that passes
joins the data as origin "expanded", round_added = round + 1, parent_id = the error sample.

Every attempt is recorded (`expansions`: kept / invalid / rejected / duplicate) together with its
sample in one transaction, so a killed run skips the slots already tried and never adds a sample
twice; the counts are the expansion yield the report shows. This is the expand node of the loop
graph; it keeps no state of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from looptool.agents.expander import dimension, expand_sample
from looptool.agents.judge import check_label
from looptool.concurrency import run_all
from looptool.config import WorkspaceConfig
from looptool.schema import Sample
from looptool.serving.client import Endpoint
from looptool.store import Store


@dataclass(frozen=True)
class ExpandContext:
    config: WorkspaceConfig
    store: Store
    expander: Endpoint
    judge: Endpoint
    today: str


def error_samples(store: Store, round: int) -> list[Sample]:
    """The round's error samples: verdict PRED_WRONG after any human override, still active."""
    ids = [v.sample_id for v in store.verdicts(round) if (v.human_override or v.verdict) == "PRED_WRONG"]
    samples = [store.get_sample(i) for i in ids]
    return [s for s in samples if s.active]


async def expand_round(ctx: ExpandContext, round: int) -> dict[str, int]:
    """Try every missing expansion slot of the round; returns the round's attempts by status."""
    store, loop = ctx.store, ctx.config.loop
    tried = store.expansion_slots(round)
    todo = [(parent, slot) for parent in error_samples(store, round) for slot in range(loop.expansions_per_error)
            if (parent.id, slot) not in tried]
    gate = asyncio.Semaphore(loop.concurrency)

    async def one(parent: Sample, slot: int) -> None:
        vary = dimension(parent.id, round, slot)
        async with gate:
            made = await expand_sample(ctx.expander, parent, round, slot, max_attempts=loop.judge_attempts,
                                       temperature=loop.expander_temperature)
            if made.value is None:
                await asyncio.to_thread(store.add_expansion, parent.id, round, slot, status="invalid",
                                        dimension=vary, detail=made.error)
                return
            check = await check_label(ctx.judge, made.value, date=ctx.today, max_attempts=loop.judge_attempts)
        sample = made.value
        if check.value is None or not check.value["correct"]:
            detail = check.error if check.value is None else check.value["analysis"]
            await asyncio.to_thread(store.add_expansion, parent.id, round, slot, status="rejected", dimension=vary,
                                    detail=detail)
            return
        exists = await asyncio.to_thread(store.has_sample, sample.id)
        await asyncio.to_thread(store.add_expansion, parent.id, round, slot, status="duplicate" if exists else "kept",
                                dimension=vary, sample=None if exists else sample, detail=check.value["analysis"])

    await run_all(one(p, s) for p, s in todo)
    return store.expansion_counts(round)
