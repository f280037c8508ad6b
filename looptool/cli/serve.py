"""`looptool serve`: start, stop and inspect the vLLM servers of a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _open_workspace, _user_errors
from looptool.config import ALL_ROLES, EndpointModel, ManagedModel, WorkspaceConfig, load_config, redact_url
from looptool.store import Store


serve_app = typer.Typer(help="Start, stop and inspect the local vLLM servers of a workspace.", no_args_is_help=True)

RolesOption = Annotated[
    list[str] | None,
    typer.Option("--role", "-r", help=f"Only these roles (repeatable): {', '.join(ALL_ROLES)}. Default: all."),
]


@serve_app.command("start")
@_user_errors
def serve_start(workspace: Workspace = Path("."), role: RolesOption = None) -> None:
    """Start (or reuse) a vLLM server for every managed model, and check every endpoint role."""
    from looptool.serving.client import endpoint_states
    from looptool.serving.server import ServerManager

    config, db_path = _open_workspace(workspace)
    roles = role or list(ALL_ROLES)
    for r in roles:
        spec = config.role(r)
        if isinstance(spec, EndpointModel):
            problems = [problem for _, problem in endpoint_states(spec) if problem is not None]
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
    from looptool.serving.client import endpoint_states
    from looptool.serving.server import ServerManager

    config = load_config(workspace)
    manager = ServerManager(workspace, config.serving)
    unhealthy = 0
    shown: set[str] = set()
    for r in ALL_ROLES:
        spec = config.role(r)
        if isinstance(spec, EndpointModel):
            states = [(url, "reachable" if problem is None else f"UNREACHABLE ({problem})")
                      for url, problem in endpoint_states(spec)]
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


def _managed_roles(config: WorkspaceConfig, roles: list[str]) -> dict[str, list[str]]:
    """Group the managed roles by model: one server per distinct model."""
    by_model: dict[str, list[str]] = {}
    for role in roles:
        spec = config.role(role)
        if isinstance(spec, ManagedModel):
            by_model.setdefault(spec.model, []).append(role)
    return by_model
