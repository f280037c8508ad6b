"""Error-driven data expansion (EDDE) of one round: k new samples around every expansion seed.

The seeds are the round's samples whose verdict (after any human override) is PRED_WRONG -- the
policy's error -- or LABEL_WRONG -- a corrected sample, expanded with its corrected label (verify
runs before expand and has replaced the label by then); inactive samples are left out. The
expander is shown the seed's correct answer, the wrong one (the round's probe prediction, or for a
corrected sample the label the judge rejected, from the label history) and the judge's analysis.
For each seed, `[loop] expansions_per_error` slots are tried: the expander writes a new sample
(validated against the tools' schemas), then the judge checks its label; a sample that passes
joins the data as origin "expanded", round_added = round + 1, parent_id = the seed.

Every attempt is recorded (`expansions`: kept / invalid / rejected / duplicate) together with its
sample and the trace of its model calls (`agent_calls`, subject "expansion:<seed id>:<round>:<slot>",
keys "expand" and "check") in one transaction, so a killed run skips the slots already tried and
never adds a sample twice; the counts are the expansion yield the report shows. This is the expand
node of the loop graph; it keeps no state of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from looptool.agents.base import AgentResult, trace_rows
from looptool.agents.expander import ExpansionSeed, dimension, expand_sample
from looptool.agents.judge import answer_text, check_label, prediction_label
from looptool.concurrency import run_all
from looptool.config import WorkspaceConfig
from looptool.graphs.verify import correction_reason
from looptool.schema import Probe, Sample
from looptool.serving.client import Endpoint
from looptool.store import Store


@dataclass(frozen=True)
class ExpandContext:
    config: WorkspaceConfig
    store: Store
    expander: Endpoint
    judge: Endpoint
    today: str


def prediction_text(probe: Probe | None) -> str:
    """The round's probe prediction as the expander reads it (the wrong answer of a PRED_WRONG seed)."""
    if probe is None:
        return "(not recorded)"
    predicted = prediction_label(probe)
    if predicted is None:
        return f"unreadable output: {probe.raw.strip()[:300]!r}"
    return answer_text(predicted.calls, predicted.text)


def rejected_label_text(store: Store, sample_id: str, round: int) -> str | None:
    """The label the round's correction replaced (the wrong answer of a LABEL_WRONG seed); None
    when the label was not corrected (then the sample's label is still the rejected one)."""
    old = next((h["label"] for h in store.label_history(sample_id) if h["reason"] == correction_reason(round)), None)
    return None if old is None else answer_text(old.calls, old.text)


def expansion_seeds(store: Store, round: int) -> list[ExpansionSeed]:
    """The round's seeds: active samples with a PRED_WRONG or LABEL_WRONG verdict after any human
    override, each with its wrong answer and the judge's analysis."""
    probes = {p.sample_id: p for p in store.probes(round)}
    seeds = []
    for v in store.verdicts(round):
        kind = v.human_override or v.verdict
        if kind not in ("PRED_WRONG", "LABEL_WRONG"):
            continue
        sample = store.get_sample(v.sample_id)
        wrong = prediction_text(probes.get(v.sample_id)) if kind == "PRED_WRONG" else \
            rejected_label_text(store, v.sample_id, round)
        if sample.active and wrong is not None:
            seeds.append(ExpansionSeed(sample, wrong, v.rationale))
    return seeds


async def expand_round(ctx: ExpandContext, round: int) -> dict[str, int]:
    """Try every missing expansion slot of the round; returns the round's attempts by status."""
    store, loop = ctx.store, ctx.config.loop
    tried = store.expansion_slots(round)
    todo = [(seed, slot) for seed in expansion_seeds(store, round) for slot in range(loop.expansions_per_error)
            if (seed.sample.id, slot) not in tried]
    gate = asyncio.Semaphore(loop.concurrency)

    def finish(parent_id: str, slot: int, status: str, vary: str, calls: dict[str, AgentResult],
               sample: Sample | None = None, detail: str | None = None) -> None:
        # The attempt, its sample and its model calls land together: a recorded slot always has its trace.
        subject = f"expansion:{parent_id}:{round}:{slot}"
        with store.transaction():
            for key, result in calls.items():
                store.record_agent_calls(subject, key, trace_rows(result), sample_id=parent_id, round=round)
            store.add_expansion(parent_id, round, slot, status=status, dimension=vary, sample=sample, detail=detail)

    async def one(seed: ExpansionSeed, slot: int) -> None:
        parent_id = seed.sample.id
        vary = dimension(parent_id, round, slot)
        async with gate:
            made = await expand_sample(ctx.expander, seed, round, slot, max_attempts=loop.judge_attempts,
                                       temperature=loop.expander_temperature, max_tokens=loop.expander_max_tokens)
            if made.value is None:
                await asyncio.to_thread(finish, parent_id, slot, "invalid", vary, {"expand": made},
                                        detail=made.error)
                return
            check = await check_label(ctx.judge, made.value, date=ctx.today, max_attempts=loop.judge_attempts)
        sample, calls = made.value, {"expand": made, "check": check}
        if check.value is None or not check.value["correct"]:
            detail = check.error if check.value is None else check.value["analysis"]
            await asyncio.to_thread(finish, parent_id, slot, "rejected", vary, calls, detail=detail)
            return
        exists = await asyncio.to_thread(store.has_sample, sample.id)
        await asyncio.to_thread(finish, parent_id, slot, "duplicate" if exists else "kept", vary, calls,
                                sample=None if exists else sample, detail=check.value["analysis"])

    await run_all(one(seed, s) for seed, s in todo)
    return store.expansion_counts(round)
