"""The ACEBench (English) suite, Normal and Special categories: pick entries, ask the policy (or
read answers from a file), score, store, summarise.

Normal answers are read by `acebench_decode` and judged by `acebench_checker.check_normal`;
Special answers are judged on their raw text (`check_special`). Results go to the workspace
database under suite "acebench", in a run whose id comes from the model and every setting that
changes an answer or its score (the prompt among them, so runs with different prompts never mix).

Summary numbers, as ACEBench's `evaluation_helper.generate_result_csv` computes them:
- a category's accuracy is passed/entries, except for the two multi-turn categories, whose
  official accuracy is per dialogue: a dialogue counts when every one of its turns passes
  (`multiplt_turn_accuracy`'s "end" score; the per-turn figure is shown beside it);
- Normal = the unweighted mean of its 12 sub-categories; Special = the unweighted mean of its 3;
- ACEBench's Overall = 0.578·Normal + 0.2676·Special + 0.1545·Agent. Agent is not run here, so
  no Overall is given; instead "Normal+Special" = (0.578·Normal + 0.2676·Special) / 0.8456, the
  same weights renormalised over the two groups that were run.
Upstream rounds each category to three decimals before averaging; here nothing is rounded.
A group is computed over the categories that were run, and says which are missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looptool.categories import parse_acebench_categories
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.eval.acebench_checker import check_normal, check_special
from looptool.eval.acebench_data import (
    AGENT_CATEGORIES,
    CATEGORIES,
    NORMAL_CATEGORIES,
    SPECIAL_CATEGORIES,
    Entry,
    category_of,
    dialogue_of,
    load_category,
    load_entries,
)
from looptool.eval.acebench_decode import PromptFormat, decode
from looptool.eval.acebench_prompt import prompt_messages, prompt_text
from looptool.eval.outputs_file import OutputsFileError, read_output_lines
from looptool.eval.runner import EvalItem, EvalProgress, Scored, result_row, run_suite, score_safely
from looptool.policy.prompt import PromptRenderer
from looptool.schema import stable_id
from looptool.serving.target import EvalTarget, answer_settings, policy_renderer
from looptool.store import Store

SUITE = "acebench"
NORMAL_WEIGHT, SPECIAL_WEIGHT, AGENT_WEIGHT = 0.578, 0.2676, 0.1545  # ACEBench's Overall weights
WEIGHTED_LABEL = f"Normal+Special (weighted {NORMAL_WEIGHT}/{SPECIAL_WEIGHT}, renormalised)"


parse_categories = parse_acebench_categories  # the one parser, below the config (looptool.categories)


def select_entries(categories: Sequence[str], limit: int | None = None) -> list[Entry]:
    """The first `limit` entries (in file order) of each category; for a multi-turn category the
    first `limit` turn entries."""
    out: list[Entry] = []
    for category in categories:
        out += load_category(category)[:limit] if limit else load_category(category)
    return out


def category_sizes() -> dict[str, int]:
    return {c: len(load_category(c)) for c in CATEGORIES}


def score_answer(entry: Entry, output: str, fmt: PromptFormat) -> Scored:
    if entry.is_special:
        verdict = check_special(entry, output)
        return Scored(verdict.valid, None, verdict.error_type, verdict.error)
    decoded = decode(output, multi_turn=entry.is_multi_turn, fmt=fmt)
    if decoded.calls is None:
        return Scored(False, None, decoded.error_type, decoded.error)
    verdict = check_normal(entry, decoded.calls)
    return Scored(verdict.valid, decoded.calls, verdict.error_type, verdict.error)


def items(entries: Sequence[Entry], fmt: PromptFormat, renderer: PromptRenderer | None = None) -> list[EvalItem]:
    """With the policy's renderer, the "tool_call" prompt is sent as text rendered as in training."""
    return [EvalItem(e.id, e.category, prompt_messages(e, fmt), lambda text, e=e: score_answer(e, text, fmt),
                     prompt_text(e, renderer) if renderer is not None and fmt == "tool_call" else None)
            for e in entries]


def run_settings(config: WorkspaceConfig) -> dict[str, Any]:
    """The settings that change an answer or its score, hence part of a run's identity."""
    return {"prompt": config.eval.acebench_prompt, **answer_settings(config)}


def run_acebench(workspace: Path, config: WorkspaceConfig, target: EvalTarget, categories: Sequence[str],
                 limit: int | None = None, *, on_progress: Callable[[EvalProgress], None] = lambda p: None,
                 ) -> tuple[str, EvalProgress]:
    """Evaluate `target` on the chosen categories; returns the run id and what this call did."""
    todo = items(select_entries(categories, limit), config.eval.acebench_prompt, policy_renderer(config))
    return run_suite(workspace, config, target, SUITE, run_settings(config), todo, on_progress)


# -- answers produced elsewhere -------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, str]:
    """`{"id": "normal_atom_bool_3", "output": "<raw model text>"}` per line -> id -> output."""
    return read_output_lines(path, _check_line, suite="ACEBench")


def _check_line(entry_id: str, output: Any, where: str) -> None:
    try:
        category_of(entry_id)
    except ValueError:
        raise OutputsFileError(f"{where}: id: {entry_id!r} is not an id of an ACEBench Normal or Special "
                               "category") from None
    if not isinstance(output, str):
        raise OutputsFileError(f"{where}: output: expected the model's raw text as a string, got "
                               f"{type(output).__name__}")


def score_outputs_file(path: Path, *, fmt: PromptFormat, workspace: Path | None = None,
                       ) -> tuple[list[dict[str, Any]], str | None]:
    """Score a file of precomputed answers without any model: the per-entry rows and, when a
    workspace database was given, the id of the run they were stored under (keyed by the file's
    content, so rescoring the same file replaces its rows)."""
    outputs = read_outputs(path)
    entries = load_entries(outputs)
    unknown = [i for i in outputs if i not in entries]
    if unknown:
        raise OutputsFileError(f"{path}: id: {unknown[0]!r} is not in the ACEBench data ({len(unknown)} unknown ids)")
    todo = items(list(entries.values()), fmt)
    todo.sort(key=lambda item: (CATEGORIES.index(item.category), _entry_order(item.id)))
    rows = [result_row(item, outputs[item.id], score_safely(item, outputs[item.id])) for item in todo]
    run_id = None
    if workspace is not None:
        settings = {"prompt": fmt, "outputs": path.name}
        run_id = stable_id("eval", SUITE, "outputs", sorted(outputs.items()), settings)
        with Store.open(workspace / DB_FILE) as store:
            store.upsert_eval_run(run_id, suite=SUITE, model=f"outputs:{path.name}", adapter=None, round=None,
                                  settings=settings)
            store.add_eval_results(run_id, rows)
            store.update_eval_scores(run_id)
    return rows, run_id


def _entry_order(entry_id: str) -> tuple[int, ...]:
    """normal_atom_bool_12 < normal_atom_bool_100; multi-turn ids sort by dialogue, then turn."""
    tail = entry_id[len(category_of(entry_id)):]
    return tuple(int(p) for p in tail.split("_") if p)


# -- summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    accuracy: float | None  # None when no member was run
    missing: tuple[str, ...]


@dataclass
class AceSummary:
    categories: dict[str, dict[str, Any]]  # category -> total, passed, accuracy, size, partial (+ turns for multi-turn)
    normal: Group
    special: Group
    weighted: float | None  # Normal+Special, renormalised weights; None unless both groups were run

    @property
    def partial(self) -> list[str]:
        return [c for c, s in self.categories.items() if s["partial"]]


def summarise(rows: Sequence[dict[str, Any]], sizes: dict[str, int]) -> AceSummary:
    """Per-category and group scores from result rows (`category`, `entry_id`, `passed`)."""
    by_category: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_category.setdefault(r["category"], []).append(r)
    cats: dict[str, dict[str, Any]] = {}
    for category in CATEGORIES:
        if category not in by_category:
            continue
        own = by_category[category]
        passed = sum(bool(r["passed"]) for r in own)
        score: dict[str, Any] = {"total": len(own), "passed": passed, "accuracy": passed / len(own),
                                 "errors": sum((r.get("error_type") or "").startswith("inference_error") for r in own),
                                 "size": sizes.get(category, len(own)), "partial": len(own) < sizes.get(category, 0)}
        if category.startswith("normal_multi_turn"):
            dialogues: dict[str, bool] = {}
            for r in own:
                key = dialogue_of(r["entry_id"])
                dialogues[key] = dialogues.get(key, True) and bool(r["passed"])
            score["turn_accuracy"] = score["accuracy"]
            score["dialogues"], score["dialogues_passed"] = len(dialogues), sum(dialogues.values())
            score["accuracy"] = sum(dialogues.values()) / len(dialogues)
        cats[category] = score
    normal, special = _group(cats, NORMAL_CATEGORIES), _group(cats, SPECIAL_CATEGORIES)
    weighted = None
    if normal.accuracy is not None and special.accuracy is not None:
        weighted = (NORMAL_WEIGHT * normal.accuracy + SPECIAL_WEIGHT * special.accuracy) / (NORMAL_WEIGHT + SPECIAL_WEIGHT)
    return AceSummary(cats, normal, special, weighted)


def _group(cats: dict[str, dict[str, Any]], members: Sequence[str]) -> Group:
    values = [cats[m]["accuracy"] for m in members if m in cats]
    return Group(sum(values) / len(values) if values else None, tuple(m for m in members if m not in cats))


def figures(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """What a round's evaluation records: category -> accuracy (dialogues for the multi-turn ones),
    ACEBench's "normal" and "special", and "all" over the entries pooled (as for the other suites)."""
    summary = summarise(rows, category_sizes())
    return ({c: s["accuracy"] for c, s in summary.categories.items()}
            | {"normal": summary.normal.accuracy, "special": summary.special.accuracy,
               "all": sum(bool(r["passed"]) for r in rows) / len(rows) if rows else None})


def summary_lines(summary: AceSummary, label: str) -> list[str]:
    """The table `eval acebench` prints."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [f"ACEBench-en ({label})", f"{'category':<40} {'passed':>9} {'accuracy':>9}"]
    for category, s in summary.categories.items():
        mark = "*" if s["partial"] else ""
        counts = f"{s['passed']}/{s['total']}{mark}"
        extra = ""
        if "dialogues" in s:
            extra = f"  (dialogues {s['dialogues_passed']}/{s['dialogues']}; turns {pct(s['turn_accuracy'])})"
        lines.append(f"{category:<40} {counts:>9} {pct(s['accuracy']):>9}{extra}")
    lines.append("")
    for name, group in (("Normal (unweighted mean of sub-categories)", summary.normal),
                        ("Special (unweighted mean of sub-categories)", summary.special)):
        missing = f"  lacks {', '.join(group.missing)}" if group.missing and group.accuracy is not None else ""
        lines.append(f"{name:<50} {pct(group.accuracy):>9}{missing}")
    lines.append(f"{WEIGHTED_LABEL:<50} {pct(summary.weighted):>9}")
    lines.append(f"Agent ({', '.join(AGENT_CATEGORIES)}): not run, so no ACEBench Overall")
    if summary.partial:
        lines.append("partial (*): " + ", ".join(f"{c} {summary.categories[c]['total']}/{summary.categories[c]['size']}"
                                                 for c in summary.partial))
    errors = sum(s["errors"] for s in summary.categories.values())
    if errors:
        lines.append(f"{errors} requests refused by the server, counted as failed")
    return lines


def summary_json(summary: AceSummary, rows: Sequence[dict[str, Any]], run_id: str | None) -> str:
    return json.dumps({
        "run_id": run_id,
        "categories": summary.categories,
        "normal": {"accuracy": summary.normal.accuracy, "missing": list(summary.normal.missing)},
        "special": {"accuracy": summary.special.accuracy, "missing": list(summary.special.missing)},
        "normal_special_weighted": summary.weighted,
        "not_run": list(AGENT_CATEGORIES),
        "entries": [{"id": r["entry_id"], "category": r["category"], "pass": bool(r["passed"]),
                     "error_type": r["error_type"], "error": r["error"]} for r in rows],
    }, ensure_ascii=False)
