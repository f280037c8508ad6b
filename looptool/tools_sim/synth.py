"""API synthesis: an intent from the semantic tree + a structure from the constraint tree ->
the generator names things -> a validated, de-duplicated ToolSpec in the store.

Deterministic given a seed and the same model responses: attempt i always pairs the same intent
with the same structure and sends the same request seed, and results are checked and stored in
attempt order, so de-duplication decisions do not depend on which request finished first.
Resumable: an intent that already produced a tool is not tried again.
"""

from __future__ import annotations

import random
import re
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from looptool.prompts import render
from looptool.schema import ToolSpec
from looptool.serving.client import Endpoint, ModelOutputError, structured_json
from looptool.store import Store
from looptool.tools_sim.constraints import Fill, Structure, describe, object_schema, sample_structure
from looptool.tools_sim.semantic import Intent, curated_domains, curated_intents, expand_subdomain
from looptool.tools_sim.validate import spec_problems

SOURCE = "synth"
# Grammar-level shapes of what the generator writes. Word counts are bounded by the patterns
# themselves: vLLM's grammar backend cannot combine a pattern with maxLength.
FUNCTION_NAME = r"^[a-z]{2,12}(_[a-z]{2,12}){1,3}$"
PARAM_NAME = r"^[a-z]{2,12}(_[a-z]{2,12}){0,2}$"
ENUM_VALUE = r"^[a-z]{2,12}(_[a-z]{2,12}){0,1}$"
SENTENCE = r"^[A-Z][a-z]{0,15}( [a-zA-Z0-9,]{1,15}){2,11}\.$"  # 3-12 words
NEAR_DUPLICATE_JACCARD = 0.8


class SynthesisRejected(Exception):
    """One attempt produced nothing usable; the message is the reason counted in the report."""


@dataclass
class SynthReport:
    """What a synthesis run did."""

    stored: int = 0
    attempts: int = 0
    skipped: int = 0  # intents that already had a tool (resume)
    rejected: Counter = field(default_factory=Counter)
    exhausted: bool = False  # ran out of intents before reaching the target
    expansions_asked: int = 0  # sub-domains whose intents the generator was asked for this run
    expansions_unusable: int = 0  # ... whose answer did not fit the schema (stored: not asked again)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def fill_schema(structure: Structure) -> dict[str, Any]:
    """The JSON Schema the generator's answer must follow for this structure."""
    text = {"type": "string", "pattern": SENTENCE}
    props: dict[str, Any] = {"function_name": {"type": "string", "pattern": FUNCTION_NAME}, "description": text}
    for path, slot in structure.slots():
        fields: dict[str, Any] = {"name": {"type": "string", "pattern": PARAM_NAME}, "description": text}
        if slot.kind == "string_enum":
            fields["values"] = {
                "type": "array",
                "items": {"type": "string", "pattern": ENUM_VALUE},
                "minItems": slot.enum_size,
                "maxItems": slot.enum_size,
            }
        props[path] = {"type": "object", "properties": fields, "required": list(fields), "additionalProperties": False}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def synth_prompt(intent: Intent, structure: Structure) -> str:
    def lines(prefix: str) -> str:
        rows = [
            f"- {path}{' (a field of ' + path.rsplit('.', 1)[0] + ')' if '.' in path else ''}: {describe(slot)}"
            for path, slot in structure.slots()
            if path.startswith(prefix)
        ]
        return "\n".join(rows) or "- (none)"

    return render(
        "looptool.tools_sim",
        "synth_function",
        domain=intent.domain,
        subdomain=intent.subdomain,
        intent=intent.intent,
        param_lines=lines("p"),
        return_lines=lines("r"),
    )


def build_spec(answer: dict[str, Any], structure: Structure) -> ToolSpec:
    """Turn the generator's answer into a spec; SynthesisRejected says why it cannot be one."""
    # Repeated enum values are dropped (keeping order); fewer than two left is rejected below.
    fills = {
        path: Fill(answer[path]["name"], answer[path]["description"], tuple(dict.fromkeys(answer[path].get("values", ()))))
        for path, _ in structure.slots()
    }
    fills = unique_sibling_names(fills, structure)
    try:
        parameters = object_schema(structure.params, fills, "p")
        returns = object_schema(structure.returns, fills, "r")
        spec = ToolSpec(name=answer["function_name"], description=answer["description"], parameters=parameters, returns=returns)
    except ValueError as exc:  # includes pydantic's ValidationError
        raise SynthesisRejected(_first_line(exc)) from None
    problems = spec_problems(spec)
    if problems:
        raise SynthesisRejected(problems[0])
    return spec


def unique_sibling_names(fills: dict[str, Fill], structure: Structure) -> dict[str, Fill]:
    """Make the names of sibling slots distinct, deterministically.

    A small generator often gives several slots one name; rejecting those answers wasted most
    attempts. The repeat gets its type appended (`date` -> `date_integer`), then a number.
    """
    out = dict(fills)
    groups: dict[str, list[str]] = {}
    for path, _ in structure.slots():
        groups.setdefault(path.rsplit(".", 1)[0] if "." in path else path[0], []).append(path)
    slots = dict(structure.slots())
    for paths in groups.values():
        taken: set[str] = set()
        for path in paths:
            name = out[path].name
            if name in taken:
                base = f"{name}_{slots[path].json_type}"
                name = base if base not in taken else next(f"{base}_{k}" for k in range(2, 99) if f"{base}_{k}" not in taken)
                out[path] = Fill(name, out[path].description, out[path].enum)
            taken.add(name)
    return out


def synthesise_function(endpoint: Endpoint, intent: Intent, structure: Structure, *, request_seed: int) -> ToolSpec:
    """One attempt: ask the generator to name a structure for an intent, and validate."""
    try:
        answer = structured_json(
            endpoint,
            [("user", synth_prompt(intent, structure))],
            fill_schema(structure),
            name="function",
            temperature=0.7,
            seed=request_seed,
            max_tokens=200 + 100 * len(structure.slots()),
        )
    except ModelOutputError as exc:
        raise SynthesisRejected(f"model output: {_first_line(exc)}") from None
    return build_spec(answer, structure)


def plan_intents(intents: list[Intent], seed: int) -> list[Intent]:
    """Shuffle within each domain, then take domains in turn, so any prefix spans many domains."""
    rng = random.Random(seed)
    by_domain: dict[str, list[Intent]] = {}
    for intent in intents:
        by_domain.setdefault(intent.domain, []).append(intent)
    queues = []
    for domain in sorted(by_domain):
        queue = list(by_domain[domain])
        rng.shuffle(queue)
        queues.append(queue)
    planned = []
    while any(queues):
        for queue in queues:
            if queue:
                planned.append(queue.pop(0))
    return planned


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def _near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    return len(a & b) / max(1, len(a | b)) >= NEAR_DUPLICATE_JACCARD


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if len(text) == 1 else " ".join(line.strip() for line in text[:3])


def synthesise(
    store: Store,
    endpoint: Endpoint,
    n: int,
    *,
    domains: list[str] | None = None,
    seed: int = 0,
    concurrency: int = 8,
    expand: int = 0,
    on_progress: Callable[[SynthReport], None] = lambda report: None,
) -> SynthReport:
    """Synthesise until the workspace holds `n` synthesised tools (or the intents run out)."""
    report = SynthReport()
    intents = curated_intents(domains)
    if expand:
        intents += _expanded_intents(store, endpoint, domains, expand, seed, concurrency, report)
    records = store.tool_records()
    names = {r["name"] for r in records}
    have = [r for r in records if r["source"] == SOURCE]
    seen_intents = [_words(r["tree_path"].rsplit("/", 1)[-1]) for r in have]
    done_paths = {r["tree_path"] for r in have}

    todo: list[tuple[int, Intent]] = []
    for i, intent in enumerate(plan_intents(intents, seed)):
        if intent.path in done_paths:
            report.skipped += 1
        else:
            todo.append((i, intent))
    need = n - len(have)
    # A sliding window: `concurrency` requests stay in flight, while results are consumed in
    # attempt order (so de-duplication does not depend on which request finished first).
    pending: deque = deque()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:

        def submit_next() -> None:
            for i, intent in queue:
                structure = sample_structure(random.Random(f"{seed}:{i}"))
                pending.append((intent, pool.submit(_attempt, endpoint, intent, structure, seed * 1_000_003 + i)))
                return

        # No more in flight than the target needs, plus a margin for rejections: requests share the
        # server's throughput, and a surplus one slows the others and is waited for at the end.
        for _ in range(min(concurrency, need + (need + 3) // 4) if need > 0 else 0):
            submit_next()
        while pending and need > 0:
            intent, future = pending.popleft()
            spec, reason = future.result()
            report.attempts += 1
            words = _words(intent.intent)
            if reason is None and spec.name in names:
                reason = "duplicate name"
            if reason is None and any(_near_duplicate(words, other) for other in seen_intents):
                reason = "near-identical intent"
            if reason is not None:
                report.rejected[reason] += 1
            else:
                store.upsert_tool(spec, domain=intent.domain, source=SOURCE, tree_path=intent.path)
                names.add(spec.name)
                seen_intents.append(words)
                report.stored += 1
                need -= 1
            on_progress(report)
            if need > 0:
                submit_next()
        for _, future in pending:  # the target is reached: drop what is still queued
            future.cancel()
    report.exhausted = need > 0
    return report


def _attempt(endpoint: Endpoint, intent: Intent, structure: Structure, request_seed: int) -> tuple[ToolSpec | None, str | None]:
    try:
        return synthesise_function(endpoint, intent, structure, request_seed=request_seed), None
    except SynthesisRejected as exc:
        return None, _reason_key(str(exc))


def _reason_key(reason: str) -> str:
    """Group reasons that differ only in where and which value (`parameters.x: enum is empty`)."""
    reason = re.sub(r"^(parameters|returns)[\w.\[\]]*: ", "", reason)
    return re.sub(r"'[^']*'|\"[^\"]*\"|\b\d+(\.\d+)?\b", "…", reason)[:120]


def _expanded_intents(store: Store, endpoint: Endpoint, domains: list[str] | None, per_subdomain: int, seed: int,
                      concurrency: int, report: SynthReport) -> list[Intent]:
    """The model-written intents of every sub-domain. Each answer is stored (agent_calls, subject
    `intents:<domain>/<sub-domain>`, keyed by seed, sizes and model), so a rerun asks nothing
    already answered; an answer that did not fit is stored too, as unusable, and not asked again.
    An endpoint error is not an answer: it stops the run and nothing is stored for it."""
    jobs = [(d, s) for d, subs in curated_domains().items() if not domains or d in domains for s in subs]
    n_caps = max(1, min(3, per_subdomain))
    n_intents = max(1, -(-per_subdomain // n_caps))

    def subject(job: tuple[str, str]) -> str:
        return f"intents:{job[0]}/{job[1]}"

    def key(k: int) -> str:
        return f"seed{seed}.k{k}.caps{n_caps}x{n_intents}.{endpoint.model}"

    answered: dict[int, list[Intent]] = {}
    for k, job in enumerate(jobs):
        for row in store.agent_calls(subject=subject(job)):
            if row["call_key"] == key(k) + ".a0":
                answered[k] = [Intent(job[0], job[1], cap, text) for cap, text in row["parsed"] or []]

    def expand(k: int) -> tuple[int, list[Intent], str | None]:
        domain, subdomain = jobs[k]
        try:
            return k, expand_subdomain(endpoint, domain, subdomain, n_caps=n_caps, n_intents=n_intents,
                                       seed=seed * 7919 + k), None
        except ModelOutputError as exc:
            return k, [], str(exc)[:300]  # fewer intents; the curated ones remain

    todo = [k for k in range(len(jobs)) if k not in answered]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for k, found, error in pool.map(expand, todo):
            report.expansions_asked += 1
            report.expansions_unusable += error is not None
            store.record_agent_calls(subject(jobs[k]), key(k), [{
                "agent": "intent_expander", "prompt_ref": "looptool.tools_sim/expand_intents",
                "status": "invalid" if error else "ok", "error": error, "model": endpoint.model,
                "parsed": [[i.capability, i.intent] for i in found],
            }])
            answered[k] = found
    return [intent for k in range(len(jobs)) for intent in answered[k]]
