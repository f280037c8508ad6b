"""Error-driven data expansion (EDDE) of one round: k new samples around every expansion seed.

The seeds are the round's samples whose verdict (after any human override) is PRED_WRONG -- the
policy's error -- or LABEL_WRONG -- a corrected sample, expanded with its corrected label (verify
runs before expand and has replaced the label by then); inactive samples are left out. The
expander is shown the seed's correct answer, the wrong one (the round's probe prediction, or for a
corrected sample the label the judge rejected, from the label history) and the judge's analysis.
For each seed, `[loop] expansions_per_error` slots are tried: the expander writes a new sample
(validated against the tools' schemas; one whose label or earlier replies hold a reply that is not
language is invalid, by the rule of seed/verify.py), then the judge checks its label; a sample that passes
joins the data as origin "expanded", round_added = round + 1, parent_id = the seed.

A templated seed -- an exact label on curated tools (seed/templated.py), or on the workspace's own
tools (seed/tool_tasks.py, `seed --templated --from-tools`) -- can be expanded without a model:
the templated expander (`templated.variant`) makes the new sample by code, keeping the seed's
tasks, scenario and call count and changing values, wording, tool order, distractors and (curated
tools, at times) names; its label is exact by construction, so no judge checks it. `[loop] expander`
chooses: "model" sends every seed to the expander model, "templated" every seed to the templated
expander (a seed it cannot vary is an invalid attempt, with the reason), "auto" the templated
seeds to the templated expander and the others to the model. `needs_model` tells the loop whether
to start the expander's and the judge's servers at all.

Every attempt is recorded (`expansions`: kept / invalid / rejected / duplicate) together with its
sample and the trace of its model calls (`agent_calls`, subject "expansion:<seed id>:<round>:<slot>",
keys "expand" and "check"; a templated attempt has one "expand" row, agent "expander", that says
what the code made from what, with no model, latency or tokens) in one transaction, so a killed run
skips the slots already tried and never adds a sample twice; the counts are the expansion yield the
report shows. This is the expand node of the loop graph; it keeps no state of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from looptool.agents.base import AgentResult, trace_rows
from looptool.agents.expander import ExpansionSeed, dimension, expand_sample
from looptool.agents.judge import answer_text, check_label, prediction_label
from looptool.concurrency import run_all
from looptool.config import WorkspaceConfig
from looptool.loop.verify import correction_reason
from looptool.schema import Probe, Sample
from looptool.seed.templated import NotTemplated, curated_tasks_by_split, sample_tasks, variant, why_not_templated
from looptool.seed.verify import language_problem
from looptool.serving.client import Endpoint
from looptool.store import Store

TEMPLATED = "templated"  # the dimension a templated attempt records (the model's: complexity, persona, ...)
TEMPLATED_SOURCE = "seed/data/templated_tasks.json"  # what a templated attempt is made from (its trace's prompt_ref)
OWN_TOOLS_SOURCE = "seed/tool_tasks.py"  # ... when the seed is on the workspace's own tools


@dataclass(frozen=True)
class ExpandContext:
    config: WorkspaceConfig
    store: Store
    expander: Endpoint | None  # None when no seed goes to the model (`needs_model`)
    judge: Endpoint | None
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
        kind = v.effective
        if kind not in ("PRED_WRONG", "LABEL_WRONG"):
            continue
        sample = store.get_sample(v.sample_id)
        wrong = prediction_text(probes.get(v.sample_id)) if kind == "PRED_WRONG" else \
            rejected_label_text(store, v.sample_id, round)
        if sample.active and wrong is not None:
            seeds.append(ExpansionSeed(sample, wrong, v.rationale))
    return seeds


def junk_reply(sample: Sample) -> str | None:
    """Why a reply of the sample -- its label, or an assistant reply of its history -- is not
    language; None when every one is."""
    replies = [m.content for m in sample.messages if m.role == "assistant" and not m.tool_calls]
    for text in replies + ([sample.label.text] if sample.label.is_no_call else []):
        why = language_problem(text)
        if why is not None:
            return why
    return None


def uses_templated(seed: Sample, expander: str) -> bool:
    """Whether the templated expander, not the model, expands the seed under `[loop] expander`."""
    if expander == "auto":
        return why_not_templated(seed) is None
    return expander == "templated"


def missing_slots(store: Store, round: int, per_seed: int) -> list[tuple[ExpansionSeed, int]]:
    """The round's expansion slots not tried yet, as (seed, slot)."""
    tried = store.expansion_slots(round)
    return [(seed, slot) for seed in expansion_seeds(store, round) for slot in range(per_seed)
            if (seed.sample.id, slot) not in tried]


def needs_model(store: Store, config: WorkspaceConfig, round: int) -> bool:
    """Whether a slot of the round still to try goes to the expander model (then its server and the
    judge's must run)."""
    loop = config.loop
    return any(not uses_templated(seed.sample, loop.expander)
               for seed, _ in missing_slots(store, round, loop.expansions_per_error))


def record_attempt(store: Store, round: int, parent_id: str, slot: int, *, status: str, dimension: str,
                   traces: dict[str, list[dict[str, Any]]], sample: Sample | None = None,
                   detail: str | None = None) -> None:
    """One expansion attempt with its sample and the trace of how it was made (rows for
    `Store.record_agent_calls` by key), together: a recorded slot always has its trace."""
    subject = f"expansion:{parent_id}:{round}:{slot}"
    with store.transaction():
        for key, rows in traces.items():
            store.record_agent_calls(subject, key, rows, sample_id=parent_id, round=round)
        store.add_expansion(parent_id, round, slot, status=status, dimension=dimension, sample=sample, detail=detail)


def templated_trace(seed: Sample, made: Sample | None, error: str | None = None) -> dict[str, Any]:
    """A templated attempt as a trace row, in the form of a model call's (`trace_rows`) so that it
    shows beside them: what the code was given (the seed, its curated tasks) and what it made. No
    model was asked, so it has no model, latency or tokens."""
    tasks = sample_tasks(seed)
    own = bool(tasks) and all(task.from_schema for task in tasks)
    source = OWN_TOOLS_SOURCE if own else TEMPLATED_SOURCE
    made_from = "tasks built from the tools' own schemas by" if own else "curated tasks of"
    prompt = (f"No model: the templated expander varies sample {seed.id} ({seed.scenario}, {seed.split}) by code, "
              f"from the {made_from} {source} ({', '.join(t.tool.name for t in tasks) or 'none traced'}): "
              "the same tasks, "
              "scenario and call count; other argument values, request wording, tool order, distractor tools, and "
              "for a training sample at times other tool and parameter names. The label is exact by construction.\n"
              f"Seed request: {seed.messages[-1].content}\n"
              f"Seed answer: {answer_text(seed.label.calls, seed.label.text)}")
    row: dict[str, Any] = {"agent": "expander", "prompt_ref": source, "prompt": prompt,
                           "status": "ok" if made is not None else "error", "error": error}
    if made is not None:
        answer = answer_text(made.label.calls, made.label.text)
        tools = [t.name for t in made.tools]
        row["raw"] = f"Tools: {', '.join(tools)}\nUser: {made.messages[-1].content}\nAnswer: {answer}"
        row["parsed"] = {"tools": tools, "user": made.messages[-1].content, "answer": answer}
    return row


def expand_templated(store: Store, round: int, todo: Sequence[tuple[ExpansionSeed, int]]) -> None:
    """Try the slots with the templated expander, one after another (code, quick): a variant is kept,
    or a duplicate of a stored sample; a seed it cannot vary is an invalid attempt."""
    # Distractors come from the tools the seed's split already offers: a held-out tool never reaches training.
    pools = curated_tasks_by_split(store.iter_samples())
    for seed, slot in todo:
        parent = seed.sample
        try:
            made = variant(parent, seed=f"{parent.id}:{round}:{slot}", pool=pools.get(parent.split, []))
        except NotTemplated as exc:
            detail = f"the templated expander cannot vary this seed: {exc}"
            record_attempt(store, round, parent.id, slot, status="invalid", dimension=TEMPLATED,
                           traces={"expand": [templated_trace(parent, None, detail)]}, detail=detail)
            continue
        made = made.model_copy(update={"round_added": round + 1})  # (the id does not hash round_added)
        exists = store.has_sample(made.id)
        detail = (f"the same sample is already stored ({made.id})" if exists else
                  "templated: the label is exact by construction, no judge asked")
        record_attempt(store, round, parent.id, slot, status="duplicate" if exists else "kept", dimension=TEMPLATED,
                       traces={"expand": [templated_trace(parent, made)]}, sample=None if exists else made,
                       detail=detail)


async def expand_round(ctx: ExpandContext, round: int) -> dict[str, int]:
    """Try every missing expansion slot of the round; returns the round's attempts by status."""
    store, loop = ctx.store, ctx.config.loop
    todo = missing_slots(store, round, loop.expansions_per_error)
    by_code: list[tuple[ExpansionSeed, int]] = []
    by_model: list[tuple[ExpansionSeed, int]] = []
    for seed, slot in todo:
        (by_code if uses_templated(seed.sample, loop.expander) else by_model).append((seed, slot))
    if by_code:
        await asyncio.to_thread(expand_templated, store, round, by_code)
    if by_model and (ctx.expander is None or ctx.judge is None):
        raise RuntimeError(f"round {round}: {len(by_model)} expansion slots need the expander model, and no "
                         "endpoint was given for the expander and the judge")
    gate = asyncio.Semaphore(loop.concurrency)

    def finish(parent_id: str, slot: int, status: str, vary: str, calls: dict[str, AgentResult],
               sample: Sample | None = None, detail: str | None = None) -> None:
        traces = {key: trace_rows(result) for key, result in calls.items()}
        record_attempt(store, round, parent_id, slot, status=status, dimension=vary, traces=traces, sample=sample,
                       detail=detail)

    async def one(seed: ExpansionSeed, slot: int) -> None:
        parent_id = seed.sample.id
        vary = dimension(parent_id, round, slot)
        async with gate:
            made = await expand_sample(ctx.expander, seed, round, slot, max_attempts=loop.judge_attempts,
                                       temperature=loop.expander_temperature, max_tokens=loop.expander_max_tokens)
            junk = None if made.value is None else junk_reply(made.value)
            if made.value is None or junk is not None:
                detail = made.error if junk is None else f"a reply of the new sample is not language ({junk})"
                await asyncio.to_thread(finish, parent_id, slot, "invalid", vary, {"expand": made}, detail=detail)
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

    await run_all(one(seed, s) for seed, s in by_model)
    return store.expansion_counts(round)
