"""The held-out suite: the policy on the workspace's own held-out samples.

Held-out samples come from dialogues over tools that no training sample uses (see `[seed]
heldout_fraction`), so this measures tool calling on unseen tools in the project's own format.
A sample's prompt is its stored context (system prompt with tools, then the history) rendered by
the policy's renderer, as in training, and the answer is judged by `calls.label_matches` -- the same binary rule as the training reward.
A match with any of the label's accepted answers (its own, or one a judge accepted) counts.
Accuracy is reported per scenario type (single, parallel, ...) and label kind (call or text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.calls import format_calls, label_matches, parse_calls
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.eval.runner import EvalItem, EvalProgress, Scored, run_items
from looptool.policy.prompt import PromptRenderer, fallback_chat
from looptool.schema import Sample
from looptool.serving.target import EvalTarget, answer_settings, chat_template_kwargs, policy_renderer
from looptool.store import Store, StoreError

SUITE = "heldout"
HELDOUT_UNREADABLE = ("parse_error", "inference_error:request_rejected")  # answers that could not be read


def score_sample(sample: Sample, output: str) -> Scored:
    parse = parse_calls(output)
    decoded = None if not parse.ok else [c.model_dump() for c in parse.calls]
    if label_matches(parse, sample.label):
        return Scored(True, decoded)
    if not parse.ok:
        return Scored(False, None, "parse_error", parse.error)
    if sample.label.is_no_call:
        return Scored(False, decoded, "call_where_none_expected", format_calls(parse.calls, "json")[:300])
    if parse.is_no_call:
        return Scored(False, decoded, "no_call", "answered in text; expected calls")
    return Scored(False, decoded, "wrong_calls", "expected " + format_calls(sample.label.calls, "json")[:300])


def sample_category(sample: Sample) -> str:
    """Scenario and label kind, e.g. "parallel/call" or "parallel/text": a dialogue of any scenario
    also yields no-call samples (replies after tool results), which any plain text passes, so they
    are kept apart from the calls that measure tool use."""
    return f"{sample.scenario or 'unknown'}/{'text' if sample.label.is_no_call else 'call'}"


def entry_sample_id(entry_id: str) -> str:
    """The sample an entry of a held-out run asked about (entry ids are "<sample id>.v<label version>")."""
    return entry_id.rpartition(".v")[0] or entry_id


def entry_tools(sample: Sample) -> tuple[list[str], str]:
    """The tools a held-out entry counts for, and its kind: the tools its label calls ("call"), or,
    for a no-call label, the tools it offered and that the policy rightly left alone ("text")."""
    if sample.label.is_no_call:
        return sorted({t.name for t in sample.tools}), "text"
    return sorted({c.name for c in sample.label.calls}), "call"


def tool_rows(rows: list[dict[str, Any]], samples: dict[str, Sample]) -> list[dict[str, Any]]:
    """Result rows of a held-out run regrouped by tool: one row per (entry, tool) with the category
    "<tool>/call" or "<tool>/text"; entries whose sample is no longer stored are left out."""
    out = []
    for row in rows:
        sample = samples.get(entry_sample_id(row["entry_id"]))
        if sample is None:
            continue
        tools, kind = entry_tools(sample)
        out += [{**row, "category": f"{tool}/{kind}"} for tool in tools]
    return out


def sample_items(samples: list[Sample], renderer: PromptRenderer | None = None) -> list[EvalItem]:
    """With the policy's renderer, each prompt is sent as text rendered exactly as in training."""
    # The label version is part of the id: a sample whose label the judge corrected is asked again.
    return [EvalItem(f"{s.id}.v{s.label_version}", sample_category(s), fallback_chat(s.messages, s.tools),
                     lambda text, s=s: score_sample(s, text),
                     renderer.render(s.messages, s.tools) if renderer is not None else None) for s in samples]


def run_heldout(workspace: Path, config: WorkspaceConfig, target: EvalTarget, *,
                on_progress: Callable[[EvalProgress], None] = lambda p: None) -> tuple[str, EvalProgress]:
    """Evaluate `target` on every active held-out sample; returns the run id and this call's progress."""
    settings = answer_settings(config)
    run_id = target.run_id(SUITE, settings)
    with Store.open(workspace / DB_FILE) as store:
        samples = list(store.iter_samples(split="heldout", active=True))
        if not samples:
            raise StoreError(f"{workspace} has no held-out samples; run 'looptool seed' first")
        store.upsert_eval_run(run_id, suite=SUITE, model=target.endpoint.model, adapter=target.adapter,
                              round=target.round, settings=settings)
        todo = sample_items(samples, policy_renderer(config))
        # Samples deactivated or relabelled since the last run no longer count.
        store.prune_eval_results(run_id, {item.id for item in todo})
        progress = run_items(todo, store, run_id, target.endpoint, target.model,
                             concurrency=config.eval.concurrency, max_tokens=settings["max_tokens"],
                             temperature=config.eval.temperature, on_progress=on_progress,
                             chat_template_kwargs=chat_template_kwargs(config))
    return run_id, progress
