"""`looptool samples`: browse the samples of a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _open_workspace, _console
from looptool.store import Store


samples_app = typer.Typer(help="Browse the samples of a workspace: a filtered table, one sample in full.",
                          no_args_is_help=True)


@samples_app.command("list")
@_user_errors
def samples_list(
    workspace: Workspace = Path("."),
    round_added: Annotated[int | None, typer.Option("--round-added", min=0, help="Only samples added in this round "
                           "(0: the seed samples; R: those made for round R's data, the expansions).")] = None,
    origin: Annotated[str | None, typer.Option(help="Only this origin: seed, corrected or expanded.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split: train or heldout.")] = None,
    scenario: Annotated[str | None, typer.Option(help="Only this scenario (single, parallel, ...).")] = None,
    category: Annotated[str | None, typer.Option(
        help="Only samples a probe put in this category: mastered, boundary or failed.")] = None,
    verdict: Annotated[str | None, typer.Option(
        help="Only samples with this verdict (a person's override wins over the judge's): LABEL_WRONG, PRED_WRONG, "
        "BOTH_OK or BOTH_WRONG.")] = None,
    probe_round: Annotated[int | None, typer.Option(
        "--probe-round", min=1, help="The round --category and --verdict refer to (default: any round); the probe "
        "and verdict columns then show that round's.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only samples that offer the tool of this name.")] = None,
    search: Annotated[str | None, typer.Option(
        help="Only samples whose id, origin, scenario, messages or label contain this text (any case).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first (the next page: --offset 50).")] = 0,
) -> None:
    """A table of the samples that pass every filter given.

    The filters are those of the terminal UI's samples screen. Samples are ordered by the round
    they were added in, then id; the columns are id, the round it was added in ("added"), origin,
    split, scenario, label, latest probe category and effective verdict. 'looptool samples show ID'
    prints one in full."""
    from looptool.export.samples import check_filters, sample_table

    check_filters(origin=origin, split=split, category=category, verdict=verdict)
    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        rows, total = store.sample_page(round_added=round_added, origin=origin, split=split, scenario=scenario,
                                        category=category, verdict=verdict, probe_round=probe_round, tool=tool,
                                        search=search, limit=limit, offset=offset)
    console = _console()
    if rows:
        table, width = sample_table(rows, console.width)
        (console if width <= console.width else _console(width)).print(table)  # lines over the terminal wrap
    more = f"; the next: --offset {offset + len(rows)}" if offset + len(rows) < total else ""
    console.print(f"{len(rows)} of {total} matching samples shown" + (f" (from {offset + 1})" if offset else "")
                  + more)


@samples_app.command("show")
@_user_errors
def samples_show(
    sample: Annotated[str, typer.Argument(help="Sample id, or a unique prefix of it.")],
    workspace: Workspace = Path("."),
) -> None:
    """Print one sample in full.

    Where it came from (origin, round added, split, scenario, dialogue, parent), its tools with their schemas, its messages, its label and the answers also accepted,
    the labels it had before, its probes, its verdicts (how each was reached) and the expansions
    made from it."""
    from looptool.export.samples import resolve_sample, sample_detail

    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        detail = sample_detail(store, resolve_sample(store, sample))
    _console().print(detail)
