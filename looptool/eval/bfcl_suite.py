"""The BFCL-v3 suite: pick entries, ask the policy (or read answers from a file), score, store.

Single-turn entries are scored with `bfcl_checker` after `bfcl_decode` reads the answer; an answer
that cannot be decoded fails its entry with the decoder's reason (for the irrelevance categories it
counts as "no call", as in BFCL). Multi-turn entries (ids `multi_turn_*`) are asked with
`bfcl_multi_turn_infer`'s loop, which runs the model's calls on BFCL's backends between steps,
always in the policy's own `<tool_call>` format (`[eval] prompt_format` concerns single-turn
prompts), and scored with `bfcl_multi_turn`; their answers may also come from a file. Results go
to the workspace database under a run whose id is derived from the model and every setting that
changes an answer or its score.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from looptool.categories import parse_bfcl_categories
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.eval.bfcl_checker import check
from looptool.eval.bfcl_data import (
    ALL_CATEGORIES,
    CATEGORIES,
    MULTI_TURN_CATEGORIES,
    Entry,
    category_of,
    load_category,
    load_entries,
)
from looptool.eval.bfcl_decode import decode
from looptool.eval.bfcl_multi_turn import check_decoded, decode_turns
from looptool.eval.bfcl_multi_turn_data import (
    MultiTurnEntry,
    is_multi_turn_id,
    load_multi_turn_category,
    load_multi_turn_entries,
    multi_turn_category_of,
)
from looptool.eval.bfcl_multi_turn_infer import converse
from looptool.eval.bfcl_prompt import (
    PromptFormat,
    conversation_messages,
    conversation_text,
    prompt_messages,
    prompt_text,
)
from looptool.eval.outputs_file import OutputsFileError, read_output_lines
from looptool.eval.runner import Asker, EvalItem, EvalProgress, Scored, result_row, run_suite, score_safely
from looptool.policy.prompt import PromptRenderer
from looptool.schema import Message, ToolSpec, load_json, stable_id
from looptool.serving.client import Completion
from looptool.serving.target import EvalTarget, answer_settings, policy_renderer
from looptool.store import Store

SUITE = "bfcl"
NO_ANSWER_CATEGORIES = ("irrelevance", "live_irrelevance")  # an undecodable answer is "no call" there


parse_categories = parse_bfcl_categories  # the one parser, below the config (looptool.categories)


def select_entries(categories: Sequence[str], limit: int | None = None) -> list[Entry | MultiTurnEntry]:
    """The first `limit` entries (in file order) of each category, single- or multi-turn."""
    out: list[Entry | MultiTurnEntry] = []
    for category in categories:
        entries = load_multi_turn_category(category) if category in MULTI_TURN_CATEGORIES else load_category(category)
        out += entries[:limit] if limit else entries
    return out


def category_sizes() -> dict[str, int]:
    """Entries per category, multi-turn ones included."""
    return {c: len(load_category(c)) for c in CATEGORIES} | {c: len(load_multi_turn_category(c))
                                                              for c in MULTI_TURN_CATEGORIES}


def score_answer(entry: Entry, output: str, fmt: PromptFormat, parallel_matching: str) -> Scored:
    decoded = decode(output, fmt)
    if decoded.calls is None and entry.category not in NO_ANSWER_CATEGORIES:
        return Scored(False, None, decoded.error_type, decoded.error)
    result = check(entry, decoded.calls, parallel_matching=parallel_matching)  # type: ignore[arg-type]
    return Scored(result.valid, decoded.calls, result.error_type, result.error)


def score_multi_turn(entry: MultiTurnEntry, output_json: str) -> Scored:
    """Score a multi-turn answer, given as the JSON text of its turns (the form rows store it in)."""
    turns = decode_turns(load_json(output_json))
    result = check_decoded(entry, turns)
    decoded = [[[{call.name: call.arguments} for call in step] for step in turn] for turn in turns]
    return Scored(result.valid, decoded, result.error_type, result.error)


def multi_turn_items(entries: Sequence[MultiTurnEntry], renderer: PromptRenderer | None = None) -> list[EvalItem]:
    """Items answered by a conversation with the model (`bfcl_multi_turn_infer.converse`), each step
    sent as text rendered by the policy's renderer when there is one, else as chat messages. The
    messages are the first turn's, for display (an answer read from a file sends nothing)."""
    return [EvalItem(e.id, e.category, e.turns[0], lambda text, e=e: score_multi_turn(e, text),
                     converse=lambda ask, e=e: ask_multi_turn(e, ask, renderer)) for e in entries]


async def ask_multi_turn(entry: MultiTurnEntry, ask: Asker, renderer: PromptRenderer | None) -> Completion:
    """Converse with the model on one multi-turn entry; the answer is the JSON text of its turns."""

    async def step(history: list[Message], tools: list[ToolSpec]) -> Completion:
        if renderer is not None:
            return await ask([], conversation_text(history, tools, renderer))
        return await ask(conversation_messages(history, tools))

    return (await converse(entry, step)).as_completion()


def items(entries: Sequence[Entry], fmt: PromptFormat, parallel_matching: str,
          renderer: PromptRenderer | None = None) -> list[EvalItem]:
    """With the policy's renderer, the policy-format prompt is sent as text rendered as in training."""
    return [
        EvalItem(e.id, e.category, prompt_messages(e, fmt),
                 lambda text, e=e: score_answer(e, text, fmt, parallel_matching),
                 prompt_text(e, renderer) if renderer is not None and fmt == "tool_call_tags" else None)
        for e in entries
    ]


def run_settings(config: WorkspaceConfig) -> dict[str, Any]:
    """The settings that change an answer or its score, hence part of a run's identity."""
    ev = config.eval
    return {"prompt_format": ev.prompt_format, "parallel_matching": ev.parallel_matching, **answer_settings(config)}


def run_bfcl(workspace: Path, config: WorkspaceConfig, target: EvalTarget, categories: Sequence[str],
             limit: int | None = None, *, on_progress: Callable[[EvalProgress], None] = lambda p: None,
             ) -> tuple[str, EvalProgress]:
    """Evaluate `target` on the chosen categories; returns the run id and what this call did."""
    entries = select_entries(categories, limit)
    renderer = policy_renderer(config)
    todo = items([e for e in entries if isinstance(e, Entry)], config.eval.prompt_format,
                 config.eval.parallel_matching, renderer)
    todo += multi_turn_items([e for e in entries if isinstance(e, MultiTurnEntry)], renderer)
    return run_suite(workspace, config, target, SUITE, run_settings(config), todo, on_progress)


# -- answers produced elsewhere -------------------------------------------------------------------


Output = str | list[list[str]]  # single-turn: the raw text; multi-turn: per turn, the text of each step


def read_outputs(path: Path) -> dict[str, Output]:
    """One answer per line -> id -> output; strict, one-line errors naming file:line and field.

    A single-turn line is `{"id": "simple_0", "output": "<raw model text>"}`; a multi-turn line
    `{"id": "multi_turn_base_0", "output": [[step_text, ...], ...]}`, one list per turn. The id
    decides which is expected.
    """
    return read_output_lines(path, _check_line, suite="BFCL")


def _check_line(entry_id: str, output: Any, where: str) -> None:
    try:
        multi_turn_category_of(entry_id) if is_multi_turn_id(entry_id) else category_of(entry_id)
    except ValueError:
        raise OutputsFileError(f"{where}: id: {entry_id!r} is not an id of a BFCL-v3 category") from None
    if is_multi_turn_id(entry_id):
        _check_turns(output, where)
    elif not isinstance(output, str):
        raise OutputsFileError(f"{where}: output: expected the model's raw text as a string, got "
                               f"{type(output).__name__}")


def _check_turns(output: Any, where: str) -> None:
    """A multi-turn output is a list (per turn) of lists (per step) of strings."""
    if not isinstance(output, list):
        raise OutputsFileError(f"{where}: output: expected a list per turn of step texts for a multi-turn entry, "
                               f"got {type(output).__name__}")
    for i, turn in enumerate(output):
        if not isinstance(turn, list):
            raise OutputsFileError(f"{where}: output[{i}]: expected the list of step texts of turn {i}, got "
                                   f"{type(turn).__name__}")
        for j, step in enumerate(turn):
            if not isinstance(step, str):
                raise OutputsFileError(f"{where}: output[{i}][{j}]: expected the model's raw text as a string, got "
                                       f"{type(step).__name__}")


def score_outputs_file(path: Path, *, fmt: PromptFormat, parallel_matching: str,
                       workspace: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], str | None]:
    """Score a file of precomputed answers without any model.

    Returns the per-entry rows, the per-category scores and, when a workspace database was given,
    the id of the run they were stored under (keyed by the file's content, so rescoring the same
    file replaces its rows). A multi-turn answer is stored as the JSON text of its turns.
    """
    outputs = read_outputs(path)
    texts = {i: o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for i, o in outputs.items()}
    single = load_entries(i for i in outputs if not is_multi_turn_id(i))
    multi = load_multi_turn_entries(i for i in outputs if is_multi_turn_id(i))
    unknown = [i for i in outputs if i not in single and i not in multi]
    if unknown:
        raise OutputsFileError(f"{path}: id: {unknown[0]!r} is not in the BFCL-v3 data ({len(unknown)} unknown ids)")
    todo = items(list(single.values()), fmt, parallel_matching) + multi_turn_items(list(multi.values()))
    todo.sort(key=lambda item: (ALL_CATEGORIES.index(item.category), _entry_order(item.id)))
    rows = [result_row(item, texts[item.id], score_safely(item, texts[item.id])) for item in todo]
    scores = tally(rows)
    run_id = None
    if workspace is not None:
        settings = {"prompt_format": fmt, "parallel_matching": parallel_matching, "outputs": path.name}
        run_id = stable_id("eval", SUITE, "outputs", sorted(texts.items()), settings)
        with Store.open(workspace / DB_FILE) as store:
            store.upsert_eval_run(run_id, suite=SUITE, model=f"outputs:{path.name}", adapter=None, round=None,
                                  settings=settings)
            store.add_eval_results(run_id, rows)
            scores = store.update_eval_scores(run_id)
    return rows, scores, run_id


def tally(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-category scores of result rows (the same numbers the store computes)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(r["category"], {"total": 0, "passed": 0, "errors": 0})
        s["total"] += 1
        s["passed"] += int(bool(r["passed"]))
        s["errors"] += int((r.get("error_type") or "").startswith("inference_error"))
    for s in out.values():
        s["accuracy"] = s["passed"] / s["total"]
    return out


def _entry_order(entry_id: str) -> tuple[int, ...]:
    """simple_12 < simple_100; live ids like live_simple_106-63-0 sort by their numbers."""
    tail = entry_id.rsplit("_", 1)[-1]
    return tuple(int(p) for p in tail.split("-") if p.isdigit())
