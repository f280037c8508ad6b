"""`looptool tools`: synthesise, import, list and describe the tools (API specs) of a workspace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _open_workspace, progress_bar
from looptool.config import ConfigError
from looptool.store import Store


tools_app = typer.Typer(help="Synthesise, import and inspect the tools (API specs) of a workspace.", no_args_is_help=True)


@tools_app.command("synth")
@_user_errors
def tools_synth(
    workspace: Workspace = Path("."),
    n: Annotated[int, typer.Option("--n", min=1, help="Synthesise until the workspace holds N synthesised tools.")] = 60,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", "-d", help="Only these domains (repeatable). Default: all 24.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the intent order and the parameter structures.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at once.")] = 16,
    expand: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Model-written intents to add per sub-domain. Default: 0 with the embedded generator "
            "(a 135M model writes word salad here), 3 with any other.",
        ),
    ] = None,
) -> None:
    """Synthesise API specs: semantic-tree intents x constraint-tree structures, named by the generator.

    Resumable: tools already made are kept and their intents are not tried again.
    """

    from looptool.config import EMBEDDED_MODEL
    from looptool.serving.client import resolve_endpoint
    from looptool.tools_sim.semantic import curated_intents
    from looptool.tools_sim.synth import SOURCE, synthesise

    config, db_path = _open_workspace(workspace)
    try:
        curated_intents(domain)  # checks the domain names before any server starts
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    generator = config.role("generator")
    if expand is None:
        expand = 0 if generator.model == EMBEDDED_MODEL else 3
    endpoint = resolve_endpoint(config, "generator", workspace)
    started = time.monotonic()
    with Store.open(db_path) as store:
        have = sum(1 for r in store.tool_records() if r["source"] == SOURCE)
        with progress_bar("synthesising tools", total=n, completed=min(have, n)) as bar:

            def show(report) -> None:
                bar.update(
                    completed=min(n, have + report.stored),
                    detail=f"attempts {report.attempts}, rejected {report.rejected_total}",
                )

            report = synthesise(
                store, endpoint, n, domains=domain, seed=seed, concurrency=concurrency, expand=expand, on_progress=show
            )
        elapsed = time.monotonic() - started
        total = have + report.stored
        summary = (
            f"tools synth: {report.stored} new, {total} synthesised in the workspace; {report.attempts} attempts, "
            f"{report.rejected_total} rejected, {report.skipped} intents already done; {elapsed:.0f}s"
        )
        store.log_event("info", "tools", summary)
    typer.echo(summary)
    for reason, count in report.rejected.most_common(8):
        typer.echo(f"  rejected {count:>4}  {reason}")
    if total < n:
        # Say what happened: "ran out" alone hid a generator whose answers were all refused.
        if report.attempts and report.rejected_total == report.attempts:
            top = report.rejected.most_common(1)[0][0]
            why = (f"every one of this run's {report.attempts} answers from the generator was rejected (most often: "
                   f"{top[:120]}); use a stronger generator")
        elif report.attempts and report.rejected_total:
            why = (f"the intents ran out: {report.rejected_total} of this run's {report.attempts} answers were "
                   "rejected; add --expand, more domains, or another --seed")
        else:
            why = "the intents ran out; add --expand, more domains, or another --seed"
        if report.expansions_unusable:
            why += f" ({report.expansions_unusable} of the generator's intent lists did not fit their schema)"
        typer.echo(f"error: stopped at {total} of {n}: {why}", err=True)
        raise typer.Exit(1)


@tools_app.command("import")
@_user_errors
def tools_import(
    file: Annotated[Path, typer.Argument(help="OpenAI tools JSON, MCP tools/list result, BFCL function docs, or a list of specs.")],
    workspace: Workspace = Path("."),
    domain: Annotated[str | None, typer.Option(help="Domain to file the tools under (default: the file name).")] = None,
    on_duplicate: Annotated[
        str,
        typer.Option(
            help="A tool whose name is already stored (or earlier in the file) with a different spec: 'refuse' the "
            "import, 'skip' it (the first spec stays), or 'replace' the stored one (refused if dialogues or samples "
            "use it). BFCL's own files give some names several docs: import them with skip.",
        ),
    ] = "refuse",
) -> None:
    """Import tool definitions from a file; a bad file is rejected whole, nothing is stored."""
    from looptool.schema import stable_id
    from looptool.tools_sim.importers import load_tools_file

    if on_duplicate not in ("refuse", "skip", "replace"):
        raise ConfigError(f"--on-duplicate: must be refuse, skip or replace, got {on_duplicate!r}")
    _, db_path = _open_workspace(workspace)
    imported = load_tools_file(file)
    ids = [stable_id("t", spec.model_dump()) for spec in imported.specs]
    with Store.open(db_path) as store:
        before = {r["id"] for r in store.tool_records()}
        stored = store.upsert_tools(imported.specs, domain=domain or file.stem, source=f"import:{imported.format}",
                                    on_duplicate=on_duplicate)
        assert all(s in (i, None) for s, i in zip(stored, ids, strict=True)), "store and importer disagree on tool ids"
        after = {r["id"] for r in store.tool_records()}
        kept = {s for s in stored if s is not None} & after  # with replace, a later spec may replace an earlier one
        skipped = sum(1 for s in stored if s is None)
        replaced = len(before - after)
        new = len(kept - before)
        summary = (
            f"tools import: read {len(ids)} {imported.format} tool definitions from {file}: {len(set(ids))} distinct, "
            f"{new} new, {len(kept) - new} already present"
        )
        if skipped:
            summary += f"; skipped {skipped} whose name was already taken by a different spec (--on-duplicate skip)"
        if replaced:
            summary += f"; replaced {replaced} stored specs (--on-duplicate replace)"
        store.log_event("info", "tools", summary)
    typer.echo(summary)


@tools_app.command("list")
@_user_errors
def tools_list(
    workspace: Workspace = Path("."),
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    split: Annotated[bool, typer.Option(
        "--split", help="Also show each tool's split: 'train', or 'heldout' (only held-out samples offer it: the "
        "held-out evaluation measures it, training never sees it), with the number of samples that offer it; and "
        "list the tools that only samples bring (templated tasks).")] = False,
) -> None:
    """One line per tool: name, domain, parameter count, source (and with --split, train or held-out)."""
    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        records = store.tool_records(domain)
        splits = store.tool_sample_splits() if split else {}
    for r in records:
        n_params = len(r["spec"].parameters.get("properties", {}))
        where = f"  {_split_text(splits.get(r['name'], {}))}" if split else ""
        typer.echo(f"{r['name']:<40} {r['domain']:<20} {n_params:>2} params  {r['source']}{where}")
    typer.echo(f"{len(records)} tools")
    if not split:
        return
    stored = {r["name"] for r in records}  # (with --domain, the tools only samples bring are not listed)
    only_in_samples = {} if domain else {name: by for name, by in splits.items() if name not in stored}
    for name, by in only_in_samples.items():
        typer.echo(f"{name:<40} {'-':<20} {'':>2}         in samples only  {_split_text(by)}")
    named = [r["name"] for r in records] + list(only_in_samples)
    counts = {k: sum(1 for n in named if _split_kind(splits.get(n, {})) == k) for k in ("train", "heldout", "both", "none")}
    typer.echo(f"split: {counts['train']} train, {counts['heldout']} heldout"
               + (f", {counts['both']} in both (a held-out tool that training also sees)" if counts["both"] else "")
               + (f", {counts['none']} in no sample" if counts["none"] else "")
               + (f"; {len(only_in_samples)} of them only in samples (templated tasks)" if only_in_samples else ""))


def _split_kind(by_split: dict[str, int]) -> str:
    return "none" if not by_split else "both" if len(by_split) > 1 else next(iter(by_split))


def _split_text(by_split: dict[str, int]) -> str:
    """'train (in 12 samples)', 'heldout (in 1 sample)', 'BOTH: train 3, heldout 2', or 'no samples'. A
    sample that offers several tools counts for each, so the counts add up to more than the samples."""
    kind = _split_kind(by_split)
    if kind == "none":
        return "no samples"
    if kind == "both":
        return "BOTH: " + ", ".join(f"{k} {v}" for k, v in sorted(by_split.items()))
    n = by_split[kind]
    return f"{kind} (in {n} sample{'s' if n != 1 else ''})"


@tools_app.command("show")
@_user_errors
def tools_show(
    name: Annotated[str, typer.Argument(help="Tool name (every tool with that name is shown).")],
    workspace: Workspace = Path("."),
) -> None:
    """Print a tool's full spec (OpenAI function JSON, plus its output schema) and where it came from."""
    import json

    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        records = [r for r in store.tool_records() if r["name"] == name]
    if not records:
        raise ConfigError(f"no tool named {name!r} in {workspace}; see 'looptool tools list'")
    for r in records:
        typer.echo(f"# {r['id']}  domain={r['domain']}  source={r['source']}  {r['tree_path']}")
        typer.echo(json.dumps(r["spec"].model_dump(exclude_none=True), indent=2, ensure_ascii=False))


@tools_app.command("stats")
@_user_errors
def tools_stats(
    workspace: Workspace = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Counts by domain, parameter-type histogram, required/optional ratio, nesting depth, enum share."""
    import json

    from looptool.tools_sim.stats import tool_stats

    _, db_path = _open_workspace(workspace, write=False)
    with Store.open(db_path) as store:
        stats = tool_stats([(r["domain"], r["spec"]) for r in store.tool_records()]).as_dict()
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    typer.echo(f"tools: {stats['tools']} in {len(stats['domains'])} domains; parameters: {stats['parameters']}")
    typer.echo("by domain:       " + ", ".join(f"{k} {v}" for k, v in stats["domains"].items()))
    typer.echo("parameter types: " + ", ".join(f"{k} {v}" for k, v in stats["parameter_types"].items()))
    typer.echo(
        f"required/optional: {stats['required']}/{stats['optional']} (required share {stats['required_share']})"
    )
    typer.echo(
        f"enum share {stats['enum_share']}, format share {stats['format_share']}, default share {stats['default_share']}"
    )
    typer.echo("nesting depth (tools): " + ", ".join(f"{k}: {v}" for k, v in stats["nesting_depth"].items()))
    typer.echo("parameters per tool:   " + ", ".join(f"{k}: {v}" for k, v in stats["params_per_tool"].items()))
