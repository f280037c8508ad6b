"""`looptool seed` (seed dialogues, or templated samples) and `looptool dialogues` (inspect them).

The top-level commands here are registered on `app` in looptool/cli/__init__.py, in the order
`looptool --help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _open_workspace, progress_bar
from looptool.config import ConfigError
from looptool.store import Store, StoreError


@_user_errors
def seed_command(
    workspace: Workspace = Path("."),
    n: Annotated[int, typer.Option("--n", min=1, help="Dialogues to make (verified or dropped) in this workspace.")] = 40,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Dialogues in flight at once.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scenarios, tools and personas of the dialogues.")] = 0,
    templated: Annotated[bool, typer.Option(
        "--templated", help="Add N templated samples instead: exact tool-call tasks built by code from a "
        "curated tool set (no model, no server), split by tool into train and held-out by \\[seed] heldout_fraction.",
    )] = False,
    from_tools: Annotated[bool, typer.Option(
        "--from-tools", help="With --templated: build the exact tasks from the workspace's own tools (tools import / "
        "synth) instead of the curated set: values drawn from each tool's JSON schema (enums, ranges, formats, nested "
        "objects, arrays), requests that state every value, labels that validate against the schema; held-out tools "
        "by \\[seed] heldout_fraction and --seed (a tool that stored samples already use keeps its split).",
    )] = False,
) -> None:
    """Simulate seed dialogues (planner, user, assistant, tool agents), verify them, and store
    their samples. The scenario mix and the rest are set in the \\[seed] section of looptool.toml.

    Resumable: kill it at any point and run it again; finished dialogues are kept, unfinished
    ones continue from their last checkpoint, none is made twice.

    With --templated no model is asked: the samples are single, parallel, missing-argument and
    irrelevant requests whose labels are exact by construction -- an SFT warm start for a policy
    that cannot call tools yet when the generator is too small to write good dialogues, and a
    held-out set to measure it on. Running it again adds nothing twice. --templated --from-tools
    builds them on the workspace's own tools. A built-in templated tool whose name a workspace tool
    has with other parameters is refused (a name is one tool).
    """
    if from_tools and not templated:
        raise ConfigError("--from-tools goes with --templated: looptool seed --templated --from-tools")
    if templated:
        _seed_templated(workspace, n, seed, from_tools=from_tools)
        return

    from looptool.seed.graph import JUDGE_REJECTED, REASON_SEPARATOR, reason_kind
    from looptool.seed.runner import resolve_judge_check, run_seed

    config, db_path = _open_workspace(workspace)
    with progress_bar("seed dialogues", total=n) as bar:

        def show(report) -> None:
            bar.update(
                completed=report.finished,
                detail=f"verified {report.done}, dropped {report.dropped}, in flight {report.in_flight}, "
                f"{report.per_minute():.1f} verified/min",
            )

        report = run_seed(workspace, config, n=n, concurrency=concurrency, seed=seed, on_progress=show,
                          log=bar.print)  # fmt: skip
    elapsed = __import__("time").monotonic() - report.started
    with Store.open(db_path) as store:
        by_status = store.dialogue_counts_by_status()
        by_scenario = store.dialogue_counts_by_scenario("done")
        by_split = store.sample_counts_by_split()
        reasons = store.dialogue_errors()
        summary = (
            f"seed: {by_status.get('done', 0)} verified, {by_status.get('dropped', 0)} dropped "
            f"(this run: {report.done} verified, {report.dropped} dropped, {report.already} already finished; "
            f"{elapsed:.0f}s); samples: {sum(by_split.values())} (train {by_split.get('train', 0)}, "
            f"heldout {by_split.get('heldout', 0)})"
        )
        store.log_event("info", "seed", summary)
    typer.echo(summary)
    typer.echo("verified by scenario: " + (", ".join(f"{k} {v}" for k, v in sorted(by_scenario.items())) or "none"))
    counted: dict[str, int] = {}
    for error, count in reasons.items():
        for reason in map(reason_kind, error.split(REASON_SEPARATOR)):
            counted[reason] = counted.get(reason, 0) + count
    if resolve_judge_check(config) or counted.get(JUDGE_REJECTED):
        typer.echo(f"judge check: {counted.get(JUDGE_REJECTED, 0)} dialogues dropped for a call turn the judge rejected "
                   "('looptool dialogues list --status dropped' shows why)")
    for reason, count in sorted(counted.items(), key=lambda kv: -kv[1])[:8]:
        typer.echo(f"  dropped {count:>4}  {reason[:150]}")


def _seed_templated(workspace: Path, n: int, seed: int, *, from_tools: bool = False) -> None:
    from looptool.seed.scenarios import NoToolsError
    from looptool.seed.templated import generated_tasks, tasks, templated_samples
    from looptool.seed.tool_tasks import own_tool_samples

    config, db_path = _open_workspace(workspace)
    share = config.seed.generated_tools_share
    notes: list[str] = []
    with Store.open(db_path) as store:
        if from_tools:
            records = store.tool_records()
            if not records:
                raise NoToolsError(f"{workspace} has no tools to build tasks from; run 'looptool tools import FILE' "
                                   "(or 'looptool tools synth') first")
            own = own_tool_samples(n, [r["spec"] for r in records], seed=seed,
                                   heldout_fraction=config.seed.heldout_fraction, splits=store.sample_tool_splits(),
                                   generated_share=share)
            if not own.tasks:
                first = next(iter(own.skipped.items()))
                raise NoToolsError(f"none of the {len(records)} tools of {workspace} can be templated ({first[1]})")
            made, command = own.samples, "seed --templated --from-tools"
            held = sorted(own.heldout)
            notes.append(f"tools: {len(own.tasks)} of {len(records)} templated; held out: " +
                         (", ".join(held) if held else "none (every tool is already in training samples, or "
                          "[seed] heldout_fraction is 0)"))
            notes += [f"left out {name}: {why}" for name, why in own.skipped.items()]
        else:
            made, command = templated_samples(n, seed=seed, heldout_fraction=config.seed.heldout_fraction,
                                              generated_share=share), "seed --templated"
            # A built-in tool must not stand for a workspace tool of its name: the policy would learn both as one.
            for source, specs in (("templated_tasks.json", [t.tool for t in tasks()]),
                                  ("generated_tools.json", [t.tool for t in generated_tasks()] if share else [])):
                clash = store.tool_clash(specs, source=f"the built-in templated tasks (looptool/seed/data/{source})")
                if clash:
                    raise StoreError(f"{clash}; for exact tasks on your own tools use "
                                     "'looptool seed --templated --from-tools'")
        clash = store.tool_clash([t for s in made for t in s.tools], source="the templated samples")
        if clash:
            raise StoreError(clash)
        samples = list({s.id: s for s in made}.values())  # two draws can make the same sample
        added = store.add_new_samples(samples)
        by_split = store.sample_counts_by_split()
        repeats = f", {len(made) - len(samples)} repeated" if len(made) > len(samples) else ""
        summary = (f"{command}: {added} added, {len(samples) - added} already stored{repeats}; "
                   f"samples: {sum(by_split.values())} "
                   f"(train {by_split.get('train', 0)}, heldout {by_split.get('heldout', 0)})")
        store.log_event("info", "seed", summary)
    typer.echo(summary)
    for note in notes:
        typer.echo(f"  {note}")


# -- dialogues ----------------------------------------------------------------------------------

dialogues_app = typer.Typer(help="Inspect the seed dialogues of a workspace and their agent traces.", no_args_is_help=True)


@dialogues_app.command("list")
@_user_errors
def dialogues_list(
    workspace: Workspace = Path("."),
    status: Annotated[
        str | None, typer.Option(help="Only dialogues with this status: pending, running, done, dropped.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
) -> None:
    """One line per dialogue: id, status, scenario, split, messages, samples, and why it was dropped."""
    from looptool.seed.show import dialogue_list

    _, db_path = _open_workspace(workspace, write=False)
    if status is not None and status not in ("pending", "running", "done", "dropped", "failed"):
        raise ConfigError(f"--status: unknown status {status!r}; use pending, running, done or dropped")
    with Store.open(db_path) as store:
        rows = store.dialogue_rows(status, limit)
        counts = store.dialogue_counts_by_status()
    for line in dialogue_list(rows):
        typer.echo(line)
    typer.echo(f"{len(rows)} shown; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@dialogues_app.command("show")
@_user_errors
def dialogues_show(
    dialogue: Annotated[str, typer.Argument(help="Dialogue id, or a unique prefix of it.")],
    workspace: Workspace = Path("."),
    trace: Annotated[bool, typer.Option("--trace", help="Also print every agent call: raw output, errors, usage.")] = False,
) -> None:
    """Print a dialogue as a transcript: its plan, each turn with agent, model and latency, its samples."""
    from looptool.schema import ids_matching
    from looptool.seed.show import render_dialogue

    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        ids = ids_matching(dialogue, (r["id"] for r in store.dialogue_rows()))
        if len(ids) != 1:
            found = "no dialogue" if not ids else f"{len(ids)} dialogues"
            raise ConfigError(f"{found} with id {dialogue!r} in {workspace}; see 'looptool dialogues list'")
        lines = render_dialogue(store, ids[0], trace=trace)
    for line in lines:
        typer.echo(line)
