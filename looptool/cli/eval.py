"""`looptool eval`: BFCL-v3, ACEBench and held-out evaluation of the policy, and the results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _check_writable, _open_workspace, progress_bar
from looptool.config import DB_FILE, ConfigError, WorkspaceConfig, load_config
from looptool.store import Store


eval_app = typer.Typer(
    help="Evaluate the policy (base or a round's adapter): BFCL-v3 categories (single- and multi-turn), ACEBench-en's "
    "Normal and Special categories (ACEBench's own prompt and scoring; Agent categories not run), and the held-out "
    "split of the workspace's own samples.",
    no_args_is_help=True,
)

RoundOption = Annotated[
    int | None,
    typer.Option("--round", "-r", min=0, help="Evaluate this round's adapter (0 or unset: the base policy)."),
]
AdapterOption = Annotated[
    Path | None,
    typer.Option("--adapter", help="Evaluate this LoRA adapter directory instead (e.g. adapters/round-1-sft)."),
]
MatchingOption = Annotated[
    str | None,
    typer.Option("--parallel-matching", help="greedy (official BFCL, the default) or bipartite (order-independent)."),
]


def _eval_config(config: WorkspaceConfig, **overrides) -> WorkspaceConfig:
    """The config with command-line overrides of [eval], validated like the file."""
    from pydantic import ValidationError

    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    try:
        ev = type(config.eval).model_validate({**config.eval.model_dump(), **given})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']} (got {err.get('input')!r})") from None
    return config.model_copy(update={"eval": ev})


def _eval_progress(label: str, run):
    """Run `run(on_progress)` under a progress bar on stderr (stdout is for the results, which
    may be JSON); returns what it returns."""
    with progress_bar(label, total=None, stderr=True) as bar:

        def show(p) -> None:
            rate = p.done / max(time.monotonic() - p.started, 1e-9)
            refused = f", {p.rejected} refused" if p.rejected else ""
            bar.update(total=p.total, completed=p.finished,
                       detail=f"passed {p.passed}/{p.done} this run{refused}, {rate:.1f}/s")

        return run(show)


@eval_app.command("bfcl")
@_user_errors
def eval_bfcl(
    workspace: Workspace = Path("."),
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated BFCL-v3 categories (single- or multi-turn), or 'all' (the "
                                 "default: all 17).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N entries of each category.")] = None,
    round: RoundOption = None,
    adapter: AdapterOption = None,
    outputs: Annotated[
        Path | None,
        typer.Option(help="Score precomputed answers instead of asking a model: a JSONL file with one "
                     '{"id": ..., "output": "<raw model text>"} per line; for a multi-turn id (multi_turn_base_0) '
                     "the output is a list per turn of the model's step texts. Needs no server and no workspace."),
    ] = None,
    verdicts: Annotated[
        Path | None, typer.Option(help="With --outputs: where to write per-entry verdicts (default: FILE.verdicts.jsonl).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
    parallel_matching: MatchingOption = None,
    prompt_format: Annotated[
        str | None, typer.Option(help="tool_call_tags (the policy's own prompt) or python (BFCL's prompt).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=512, help="Requests in flight at once.")] = None,
) -> None:
    """Score the policy on BFCL-v3 with BFCL's checker semantics.

    Single-turn entries are scored with the AST checker. Multi-turn entries are asked with BFCL's
    inference loop: turn by turn, the policy's calls run on BFCL's simulated services and their
    results are fed back until it answers without a call (at most 20 steps with calls a turn);
    the executable multi-turn checker scores the conversation. Prints accuracy per category and
    the leaderboard's summary numbers (simple_ast, non-live, live, multi-turn, overall over the
    groups that were run). Results are stored per entry in the workspace; running it again
    continues the same run, asking only what is missing. --outputs scores answers made elsewhere.
    Defaults come from the [eval] section of looptool.toml.
    """
    import json

    from looptool.eval import bfcl_suite
    from looptool.eval.aggregate import summarise
    from looptool.eval.show import bfcl_table

    if outputs is not None:
        if categories or limit or round or adapter:
            raise ConfigError("--outputs scores the entries in the file; --categories, --limit, --round and --adapter "
                              "do not apply")
        has_db = (workspace / DB_FILE).is_file()
        config = load_config(workspace) if has_db else WorkspaceConfig()
        config = _eval_config(config, parallel_matching=parallel_matching, prompt_format=prompt_format)
        target_path = verdicts or outputs.with_name(outputs.stem + ".verdicts.jsonl")
        # Checked before scoring: scoring stores a run, and a verdicts file that cannot be
        # written afterwards would leave a stored run and a traceback.
        if not target_path.parent.is_dir():
            raise ConfigError(f"--verdicts {target_path}: directory {target_path.parent} does not exist")
        _check_writable(target_path, "--verdicts")
        if has_db:
            _open_workspace(workspace)
        rows, scores, run_id = bfcl_suite.score_outputs_file(
            outputs, fmt=config.eval.prompt_format, parallel_matching=config.eval.parallel_matching,
            workspace=workspace if has_db else None)  # fmt: skip
        _write_verdicts(target_path, rows)
        run = {"round": None, "model": f"outputs:{outputs.name}"}
    else:
        from looptool.serving.target import resolve_target

        chosen = bfcl_suite.parse_categories(categories)
        config, _ = _open_workspace(workspace)
        config = _eval_config(config, parallel_matching=parallel_matching, prompt_format=prompt_format,
                              concurrency=concurrency)
        target = resolve_target(workspace, config, round, adapter=adapter, log=lambda line: typer.echo(line, err=True))
        run_id, progress = _eval_progress(
            "BFCL-v3", lambda show: bfcl_suite.run_bfcl(workspace, config, target, chosen, limit, on_progress=show))  # fmt: skip
        with Store.open(workspace / DB_FILE) as store:
            run = next(r for r in store.eval_runs("bfcl") if r["id"] == run_id)
            rows = store.eval_results(run_id)
            store.log_event("info", "eval", f"BFCL-v3 {run_id} ({target.label}): {progress.done} scored this run, "
                                             f"{progress.passed} passed")
        ids = {e.id for e in bfcl_suite.select_entries(chosen, limit)}
        rows = [r for r in rows if r["entry_id"] in ids]
        scores = bfcl_suite.tally(rows)  # this command's selection; the stored run may hold more
    sizes = bfcl_suite.category_sizes()
    if as_json:
        summary = summarise(scores, sizes)
        typer.echo(json.dumps({
            "run_id": run_id,
            "categories": summary.categories,
            "groups": {g: {"accuracy": v.accuracy, "missing": list(v.missing)} for g, v in summary.groups.items()},
            "overall_as_leaderboard": summary.overall_as_leaderboard,
            "entries": [{"id": r["entry_id"], "category": r["category"], "pass": bool(r["passed"]),
                         "error_type": r["error_type"], "error": r["error"]} for r in rows],
        }, ensure_ascii=False))  # fmt: skip
        return
    for line in bfcl_table([run], [scores], sizes):
        typer.echo(line)
    if outputs is not None:
        typer.echo(f"verdicts: {target_path}" + (f"; stored as run {run_id}" if run_id else ""))
    else:
        typer.echo(f"stored as run {run_id} in {workspace / DB_FILE}; see 'looptool eval show'")


def _write_verdicts(path: Path, rows) -> None:
    """Per-entry verdicts as JSONL, written whole (to a temporary name, then renamed)."""
    import json
    import os

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["entry_id"], "category": r["category"], "pass": bool(r["passed"]),
                                "error_type": r["error_type"], "error": r["error"], "decoded": r["decoded"]},
                               ensure_ascii=False, default=repr) + "\n")
    os.replace(tmp, path)


@eval_app.command("acebench")
@_user_errors
def eval_acebench(
    workspace: Workspace = Path("."),
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated ACEBench categories or groups (normal, special, atom, "
                                 "multi_turn), or 'all' (the default: every Normal and Special category).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N entries of each category.")] = None,
    round: RoundOption = None,
    adapter: AdapterOption = None,
    outputs: Annotated[
        Path | None,
        typer.Option(help="Score precomputed answers instead of asking a model: a JSONL file with one "
                     '{"id": ..., "output": "<raw model text>"} per line (any mix of categories, any subset). '
                     "Needs no server and no workspace."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
    prompt: Annotated[
        str | None, typer.Option(help="acebench (ACEBench's own English prompt, the default) or tool_call (the "
                                 "policy's own <tool_call> prompt, the LoopTool paper's setting).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=512, help="Requests in flight at once.")] = None,
) -> None:
    """Score the policy on ACEBench-en's Normal and Special categories with ACEBench's own scoring.

    Prints accuracy per category, Normal (the unweighted mean of its 12 sub-categories), Special
    (the unweighted mean of its 3) and a Normal+Special figure with ACEBench's weights renormalised.
    The Agent categories are not run (they need ACEBench's sandbox and a simulated user), so no
    ACEBench Overall is given. Results are stored per entry in the workspace; running it again
    continues the same run, asking only what is missing. Defaults come from [eval] in looptool.toml.
    """
    from looptool.eval import acebench_suite

    if outputs is not None:
        if categories or limit or round or adapter:
            raise ConfigError("--outputs scores the entries in the file; --categories, --limit, --round and --adapter "
                              "do not apply")
        has_db = (workspace / DB_FILE).is_file()
        config = load_config(workspace) if has_db else WorkspaceConfig()
        config = _eval_config(config, acebench_prompt=prompt)
        if has_db:
            _open_workspace(workspace)
        rows, run_id = acebench_suite.score_outputs_file(outputs, fmt=config.eval.acebench_prompt,
                                                         workspace=workspace if has_db else None)
        label = f"outputs:{outputs.name}"
    else:
        from looptool.serving.target import resolve_target

        chosen = acebench_suite.parse_categories(categories)
        config, _ = _open_workspace(workspace)
        config = _eval_config(config, acebench_prompt=prompt, concurrency=concurrency)
        target = resolve_target(workspace, config, round, adapter=adapter, log=lambda line: typer.echo(line, err=True))
        run_id, progress = _eval_progress(
            "ACEBench", lambda show: acebench_suite.run_acebench(workspace, config, target, chosen, limit,
                                                                on_progress=show))
        with Store.open(workspace / DB_FILE) as store:
            rows = store.eval_results(run_id)
            store.log_event("info", "eval", f"ACEBench {run_id} ({target.label}): {progress.done} scored this run, "
                                             f"{progress.passed} passed")
        ids = {e.id for e in acebench_suite.select_entries(chosen, limit)}
        rows = [r for r in rows if r["entry_id"] in ids]  # this command's selection; the run may hold more
        label = target.label
    summary = acebench_suite.summarise(rows, acebench_suite.category_sizes())
    if as_json:
        typer.echo(acebench_suite.summary_json(summary, rows, run_id))
        return
    for line in acebench_suite.summary_lines(summary, f"{label}, prompt {config.eval.acebench_prompt}"):
        typer.echo(line)
    if run_id:
        typer.echo(f"stored as run {run_id} in {workspace / DB_FILE}")


@eval_app.command("heldout")
@_user_errors
def eval_heldout(
    workspace: Workspace = Path("."),
    round: RoundOption = None,
    adapter: AdapterOption = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=512, help="Requests in flight at once.")] = None,
) -> None:
    """Score the policy on the workspace's held-out samples (tools never seen in training), by scenario
    and by tool ('looptool tools list --split' shows which tools are held out).

    An answer passes when it makes exactly the labelled calls (or, for a no-call label, no call):
    the same rule as the training reward.
    """
    from looptool.eval.bfcl_suite import tally
    from looptool.eval.heldout import HELDOUT_UNREADABLE, run_heldout, tool_rows
    from looptool.eval.show import error_summary, heldout_table, heldout_tool_table
    from looptool.serving.target import resolve_target

    config, db_path = _open_workspace(workspace)
    config = _eval_config(config, concurrency=concurrency)
    target = resolve_target(workspace, config, round, adapter=adapter, log=lambda line: typer.echo(line, err=True))
    run_id, progress = _eval_progress("held-out", lambda show: run_heldout(workspace, config, target, on_progress=show))
    with Store.open(db_path) as store:
        run = next(r for r in store.eval_runs("heldout") if r["id"] == run_id)
        scores = store.eval_scores(run_id)
        store.log_event("info", "eval", f"held-out {run_id} ({target.label}): {progress.done} scored this run, "
                                         f"{progress.passed} passed")
        errors = store.eval_error_counts(run_id)
        samples = {s.id: s for s in store.iter_samples(split="heldout")}
        by_tool = tally(tool_rows(store.eval_results(run_id), samples))
    for line in heldout_table([run], [scores]):
        typer.echo(line)
    typer.echo(error_summary(errors, sum(s["total"] for s in scores.values()), HELDOUT_UNREADABLE))
    typer.echo("")
    for line in heldout_tool_table([run], [by_tool]):
        typer.echo(line)
    typer.echo(f"stored as run {run_id} in {db_path}; see 'looptool eval show'")


@eval_app.command("show")
@_user_errors
def eval_show(
    workspace: Workspace = Path("."),
    suite: Annotated[str, typer.Option(
        help="summary (every suite in one table, a row per model), bfcl, acebench, heldout, or all (the summary, "
        "then each suite's table).")] = "all",
    run: Annotated[str | None, typer.Option(help="Only this run (an id or a unique prefix).")] = None,
    failures: Annotated[int, typer.Option(min=0, help="Also list up to N failed entries per run.")] = 0,
    by: Annotated[str, typer.Option(
        help="Rows of the held-out table: 'scenario' (single, parallel, ... by label kind) or 'tool' (each held-out "
        "tool: the entries whose label calls it, and the no-call entries that offered it).")] = "scenario",
    all_entries: Annotated[bool, typer.Option(
        "--all-entries", help="Score each run on all of its entries, even where runs scored different ones (the "
        "columns are then not comparable). Default: only the entries every run shown scored.")] = False,
) -> None:
    """Tables of the stored evaluations, to compare rounds: first a summary with a row per model (base, warm
    start, round 1, ...) and the held-out, BFCL-v3 and ACEBench figures side by side with 95% intervals, then
    each suite's table with a column per run.

    Rounds are compared on the same entries: when runs scored different entries (a smaller --limit, a
    label corrected since), the columns that differ are marked and every column counts only the
    entries all runs share; a note says how many each run scored."""
    from looptool.eval import acebench_suite, bfcl_suite
    from looptool.eval.heldout import tool_rows
    from looptool.eval.show import (
        acebench_table,
        bfcl_table,
        compare_runs,
        heldout_table,
        heldout_tool_table,
        in_training_order,
        summary_table,
    )
    from looptool.eval.show import failures as failure_lines

    suites = ("bfcl", "acebench", "heldout")
    if suite not in (*suites, "summary", "all"):
        raise ConfigError(f"--suite: unknown suite {suite!r}; use summary, bfcl, acebench, heldout or all")
    if by not in ("scenario", "tool"):
        raise ConfigError(f"--by: unknown grouping {by!r}; use scenario or tool")
    _, db_path = _open_workspace(workspace, write=False)
    blocks: list[list[str]] = []
    compared_by_suite = {}
    with Store.open(db_path) as store:
        for name in suites:
            if suite not in (name, "all", "summary"):
                continue
            runs = in_training_order([r for r in store.eval_runs(name) if run is None or r["id"].startswith(run)])
            if not runs:
                continue
            compared = compare_runs(runs, [store.eval_results(r["id"]) for r in runs], all_entries=all_entries)
            compared_by_suite[name] = compared
            if suite == "summary":
                continue
            if name == "bfcl":
                lines = bfcl_table(compared.runs, [bfcl_suite.tally(rows) for rows in compared.rows],
                                   bfcl_suite.category_sizes())
            elif name == "acebench":
                sizes = acebench_suite.category_sizes()
                lines = acebench_table(compared.runs, [acebench_suite.summarise(rows, sizes) for rows in compared.rows])
            elif by == "tool":
                samples = {s.id: s for s in store.iter_samples(split="heldout")}
                lines = heldout_tool_table(compared.runs,
                                           [bfcl_suite.tally(tool_rows(rows, samples)) for rows in compared.rows])
            else:
                lines = heldout_table(compared.runs, [bfcl_suite.tally(rows) for rows in compared.rows])
            lines += compared.notes
            for r in runs:
                lines.append(f"[{r['id']}] {r['model']}" + (f" + {r['adapter']}" if r["adapter"] else "")
                             + f", settings {r['settings']}, updated {r['updated_at'][:19]}")
                lines += ["  " + line for line in failure_lines(store.eval_results(r["id"], failed_only=True), failures)]
            blocks.append(lines)
    if suite in ("summary", "all") and compared_by_suite:
        table = summary_table({name: (c.runs, c.rows) for name, c in compared_by_suite.items()},
                              bfcl_suite.category_sizes(), acebench_suite.category_sizes())
        blocks.insert(0, table)
    if not blocks:
        typer.echo("no evaluations yet; run 'looptool eval heldout', 'looptool eval bfcl' or 'looptool eval acebench'")
    for i, lines in enumerate(blocks):
        if i:
            typer.echo("")
        for line in lines:
            typer.echo(line)
