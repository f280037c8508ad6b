"""Text tables of evaluation results: one column per run, so rounds compare side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looptool.config import EvalConfig
from looptool.eval.aggregate import GROUPS, BfclSummary, summarise
from looptool.eval.bfcl_data import ALL_CATEGORIES

GROUP_LABELS = {
    "simple_ast": "simple_ast (mean py/java/js)",
    "non_live_ast": "non-live AST",
    "non_live": "non-live overall",
    "live": "live overall (weighted)",
    "multi_turn": "multi-turn",
    "overall": "overall (groups run)",
}


WARM_START_ADAPTER = ("adapters", "round-1-sft")  # the tail of the warm start's adapter path


def is_base_run(run: dict[str, Any]) -> bool:
    """A run of the base policy: round 0, no adapter (`looptool eval heldout|bfcl`)."""
    return run["round"] == 0 and not run["adapter"]


def is_warm_start_run(run: dict[str, Any]) -> bool:
    """A run of the SFT warm start (`looptool eval ... --adapter DIR/adapters/round-1-sft`)."""
    # The tail only: the path is stored resolved, and a workspace may have been moved since.
    return run["round"] is None and bool(run.get("adapter")) and Path(run["adapter"]).parts[-2:] == WARM_START_ADAPTER


def in_training_order(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The base model first, then the warm start and other adapters, then the rounds (each group in
    the order given): the order in which the policy was trained."""
    def place(run: dict[str, Any]) -> int:
        return 0 if run["round"] == 0 else 1 if is_warm_start_run(run) else 2 if run["round"] is None else 3
    return sorted(runs, key=place)


def run_label(run: dict[str, Any]) -> str:
    """"base", "warm start", "round 2", or the adapter or outputs file; settings that differ from the
    defaults follow, so two runs of one model under different settings stay apart."""
    if is_warm_start_run(run):
        return "warm start" + run.get("mark", "")
    if run["round"] is None:
        return (f"adapter {Path(run['adapter']).name}" if run.get("adapter") else run["model"]) + run.get("mark", "")
    label = "base" if run["round"] == 0 else f"round {run['round']}"
    defaults = EvalConfig().model_dump()
    changed = [f"{k}={v}" for k, v in sorted((run.get("settings") or {}).items()) if k in defaults and defaults[k] != v]
    return (f"{label} ({', '.join(changed)})" if changed else label) + run.get("mark", "")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _cell(score: dict[str, Any] | None) -> str:
    if score is None:
        return "-"
    mark = "*" if score.get("partial") else ""
    err = f" !{score['errors']}" if score.get("errors") else ""
    return f"{_pct(score['accuracy'])} ({score['passed']}/{score['total']}{mark}){err}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def bfcl_table(runs: Sequence[dict[str, Any]], scores: Sequence[dict[str, dict[str, Any]]],
               sizes: dict[str, int]) -> list[str]:
    """Per-category accuracy (passed/total) and the BFCL-v3 summary rows, one column per run."""
    summaries: list[BfclSummary] = [summarise(s, sizes) for s in scores]
    header = ["BFCL-v3 category", *(run_label(r) for r in runs)]
    rows = [[f"{c} ({sizes.get(c, '?')})", *(_cell(s.categories.get(c)) for s in summaries)]
            for c in ALL_CATEGORIES if any(c in s.categories for s in summaries)]
    rows.append(["", *("" for _ in runs)])
    for group in GROUPS:
        rows.append([GROUP_LABELS[group], *(_pct(s.groups[group].accuracy) for s in summaries)])
    rows.append(["overall as leaderboard (missing = 0)", *(_pct(s.overall_as_leaderboard) for s in summaries)])
    lines = _table(header, rows)
    for run, s in zip(runs, summaries):
        notes = []
        if s.partial:
            notes.append("partial (*): " + ", ".join(f"{c} {s.categories[c]['total']}/{s.categories[c]['size']}"
                                                        for c in s.partial))
        missing = [g for g in ("simple_ast", "non_live", "live", "multi_turn") if s.groups[g].missing]
        for g in missing:
            notes.append(f"{GROUP_LABELS[g]} lacks " + ", ".join(s.groups[g].missing))
        errors = sum(c.get("errors") or 0 for c in s.categories.values())
        if errors:
            notes.append(f"{errors} requests refused by the server (!n), counted as failed")
        lines.append(f"[{run_label(run)}] " + "; ".join(notes))
    return lines


def heldout_table(runs: Sequence[dict[str, Any]], scores: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    """Held-out accuracy per scenario and overall, one column per run."""
    scenarios = sorted({c for s in scores for c in s})
    header = ["held-out scenario", *(run_label(r) for r in runs)]
    rows = [[c, *(_cell(s.get(c)) for s in scores)] for c in scenarios]
    rows.append(["", *("" for _ in runs)])
    for name, kinds in (("calls", ("call",)), ("text (no call)", ("text",)), ("all", ("call", "text"))):
        cells = []
        for s in scores:
            picked = [v for c, v in s.items() if c.rsplit("/", 1)[-1] in kinds]
            total, passed = sum(v["total"] for v in picked), sum(v["passed"] for v in picked)
            cells.append(_cell({"accuracy": passed / total, "passed": passed, "total": total}) if total else "-")
        rows.append([name, *cells])
    return _table(header, rows)


DIFFERENT_ENTRIES = "†"  # marks a column measured on other entries than the rest


@dataclass
class Comparison:
    """Runs of one suite made comparable: each run's rows cut to the entries every run scored (unless
    asked for all), the runs whose entries differ marked, and a note saying what was left out."""

    runs: list[dict[str, Any]]  # the runs, a column measured on other entries marked
    rows: list[list[dict[str, Any]]]  # each run's result rows to score
    notes: list[str]


def compare_runs(runs: Sequence[dict[str, Any]], rows: Sequence[Sequence[dict[str, Any]]], *,
                 all_entries: bool = False) -> Comparison:
    """Rounds compare only on the entries they share: when the runs did not score the same entries
    (round 1 with 2 entries a category, the others with 10), a column whose run lacks entries that
    another scored is marked, and every run is scored on the entries all share -- or, with
    `all_entries`, on all of its own, the marked columns then not comparable."""
    entries = [{r["entry_id"] for r in run_rows} for run_rows in rows]
    if len(runs) < 2 or all(e == entries[0] for e in entries):
        return Comparison(list(runs), [list(r) for r in rows], [])
    union, shared = set().union(*entries), set.intersection(*entries)
    marked = [{**run, "mark": DIFFERENT_ENTRIES} if e != union else dict(run) for run, e in zip(runs, entries)]
    who = ", ".join(f"{run_label(run)} {len(e)}" for run, e in zip(runs, entries))
    if all_entries:
        notes = [f"{DIFFERENT_ENTRIES} measured on other entries than the rest (entries scored: {who}); each column "
                 "counts all of its own entries, so columns are not comparable (without --all-entries: only the "
                 f"{len(shared)} entries all runs share)"]
        return Comparison(marked, [list(r) for r in rows], notes)
    notes = [f"{DIFFERENT_ENTRIES} measured on fewer or other entries than the rest (entries scored: {who}); every "
             f"column counts only the {len(shared)} entries all runs share (--all-entries: each run on all of its own)"]
    return Comparison(marked, [[r for r in run_rows if r["entry_id"] in shared] for run_rows in rows], notes)


def heldout_tool_table(runs: Sequence[dict[str, Any]], scores: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    """Held-out accuracy per tool, one column per run: the entries whose label calls the tool, and
    (a row of its own) the no-call entries that offered it. An entry calling two tools counts for both."""
    tools = sorted({c.rsplit("/", 1)[0] for s in scores for c in s})
    header = ["held-out tool", *(run_label(r) for r in runs)]
    rows = []
    for tool in tools:
        for kind, name in (("call", tool), ("text", f"{tool} (no call)")):
            if any(f"{tool}/{kind}" in s for s in scores):
                rows.append([name, *(_cell(s.get(f"{tool}/{kind}")) for s in scores)])
    return _table(header, rows) if rows else ["no held-out results to show by tool"]


def failures(rows: Sequence[dict[str, Any]], limit: int) -> list[str]:
    """The first failed entries of a run: id, error type and what the model said."""
    out = []
    for r in [r for r in rows if not r["passed"]][:limit]:
        said = " ".join((r["output"] or "").split())[:120]
        out.append(f"{r['entry_id']}: {r['error_type']}: {(r['error'] or '')[:120]}")
        out.append(f"    output: {said!r}")
    return out


def error_summary(errors: dict[str | None, int], total: int, unreadable: Sequence[str]) -> str:
    """"readable 9/12 (75.0%); failures: no_call 5, parse_error 3" -- how many answers could be read at
    all (`unreadable` names the error types that mean they could not), then the failures by kind."""
    bad = sum(n for kind, n in errors.items() if kind in unreadable)
    kinds = ", ".join(f"{kind or 'unknown'} {n}" for kind, n in errors.items())
    readable = f"readable {total - bad}/{total} ({100 * (total - bad) / total:.1f}%)" if total else "no answers"
    return readable + (f"; failures: {kinds}" if kinds else "")


def acebench_table(runs: Sequence[dict[str, Any]], summaries: Sequence[Any]) -> list[str]:
    """ACEBench per-category accuracy (passed/total) and the Normal/Special rows, one column per run.
    `summaries` are `acebench_suite.AceSummary`s; the multi-turn categories count dialogues, as
    ACEBench does (a dialogue passes when all its turns pass)."""
    from looptool.eval.acebench_data import AGENT_CATEGORIES, CATEGORIES
    from looptool.eval.acebench_suite import WEIGHTED_LABEL

    def cell(score: dict[str, Any] | None) -> str:
        if score is None:
            return "-"
        if "dialogues" in score:
            score = {**score, "passed": score["dialogues_passed"], "total": score["dialogues"]}
        return _cell(score)

    header = ["ACEBench-en category", *(run_label(r) for r in runs)]
    rows = [[c, *(cell(s.categories.get(c)) for s in summaries)]
            for c in CATEGORIES if any(c in s.categories for s in summaries)]
    rows.append(["", *("" for _ in runs)])
    rows.append(["Normal (mean of sub-categories)", *(_pct(s.normal.accuracy) for s in summaries)])
    rows.append(["Special (mean of sub-categories)", *(_pct(s.special.accuracy) for s in summaries)])
    rows.append([WEIGHTED_LABEL, *(_pct(s.weighted) for s in summaries)])
    lines = _table(header, rows)
    lines.append(f"multi-turn categories count dialogues (all turns passed); agent categories "
                 f"({', '.join(AGENT_CATEGORIES)}) are not run, so there is no ACEBench Overall")
    for run, s in zip(runs, summaries):
        notes = [f"{g} lacks {', '.join(group.missing)}" for g, group in (("Normal", s.normal), ("Special", s.special))
                 if group.missing and group.accuracy is not None]
        if s.partial:
            notes.append("partial (*): " + ", ".join(f"{c} {s.categories[c]['total']}/{s.categories[c]['size']}"
                                                     for c in s.partial))
        if notes:
            lines.append(f"[{run_label(run)}] " + "; ".join(notes))
    return lines


# -- every suite in one table ----------------------------------------------------------------------


def model_key(run: dict[str, Any]) -> str:
    """What a run measured, the same across suites: "base", "warm start", "round 2", an adapter."""
    return run_label({**run, "mark": ""})


def pooled_cell(passed: int, total: int) -> str:
    """"33.5 [27.4, 40.2] 69/206": accuracy over the entries with its 95% Wilson interval."""
    from looptool.stats import wilson_interval

    if not total:
        return "-"
    low, high = wilson_interval(passed, total)
    return f"{100 * passed / total:.1f} [{100 * low:.1f}, {100 * high:.1f}] {passed}/{total}"


SUMMARY_COLUMNS = ("held-out (all)", "held-out (calls)", "BFCL-v3 entries", "BFCL-v3 overall", "ACEBench entries",
                   "ACEBench Normal", "ACEBench Special", "ACEBench Normal+Special")


def summary_table(suites: dict[str, tuple[Sequence[dict[str, Any]], Sequence[Sequence[dict[str, Any]]]]],
                  bfcl_sizes: dict[str, int], acebench_sizes: dict[str, int]) -> list[str]:
    """One row per model (base, warm start, each round, other adapters), one column per figure of
    every suite run: held-out, BFCL-v3 and ACEBench side by side.

    `suites`: suite -> (its runs, each run's result rows), as `compare_runs` left them (every run
    counted on the entries all runs of that suite share). Pooled accuracies carry a 95% Wilson
    interval; the official summary figures (BFCL-v3 overall over the groups run, ACEBench
    Normal/Special, means of category accuracies) have no such interval and are shown bare."""
    from looptool.eval.acebench_suite import summarise as ace_summarise
    from looptool.eval.bfcl_suite import tally

    cells: dict[str, dict[str, str]] = {}
    order: list[tuple[dict[str, Any], str]] = []
    for suite, (runs, rows) in suites.items():
        for run, run_rows in zip(runs, rows):
            key = model_key(run)
            if key not in cells:
                cells[key] = {}
                order.append((run, key))
            passed, total = sum(bool(r["passed"]) for r in run_rows), len(run_rows)
            own = cells[key]
            if suite == "heldout":
                own["held-out (all)"] = pooled_cell(passed, total)
                calls = [r for r in run_rows if r["category"].endswith("/call")]
                own["held-out (calls)"] = pooled_cell(sum(bool(r["passed"]) for r in calls), len(calls))
            elif suite == "bfcl":
                own["BFCL-v3 entries"] = pooled_cell(passed, total)
                overall = summarise(tally(run_rows), bfcl_sizes).groups["overall"]
                own["BFCL-v3 overall"] = _pct(overall.accuracy) + ("" if not overall.missing else " (part)")
            elif suite == "acebench":
                ace = ace_summarise(run_rows, acebench_sizes)
                own["ACEBench entries"] = pooled_cell(passed, total)
                own["ACEBench Normal"] = _pct(ace.normal.accuracy)
                own["ACEBench Special"] = _pct(ace.special.accuracy)
                own["ACEBench Normal+Special"] = _pct(ace.weighted)
    columns = [c for c in SUMMARY_COLUMNS if any(c in own for own in cells.values())]
    ordered = [key for _, key in sorted(order, key=lambda rk: _training_place(rk[0]))]
    lines = _table(["model", *columns], [[key, *(cells[key].get(c, "-") for c in columns)] for key in ordered])
    notes = ["entries: accuracy over the entries scored, [95% Wilson interval], passed/total"]
    if "BFCL-v3 overall" in columns:
        notes.append("BFCL-v3 overall: the v3 formula over the groups run; (part): some groups not run, see the BFCL "
                     "table")
    return [*lines, "", *notes]


def _training_place(run: dict[str, Any]) -> tuple[int, int]:
    """Base, warm start, other adapters, then the rounds in order."""
    if run["round"] == 0:
        return 0, 0
    if is_warm_start_run(run):
        return 1, 0
    if run["round"] is None:
        return 2, 0
    return 3, run["round"]
