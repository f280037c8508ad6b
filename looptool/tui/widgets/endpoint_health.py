"""Roles -> model -> endpoint -> health. Managed models: the state of the server this workspace
started (from its state file; the TUI never starts one). Endpoint models: the check `looptool
serve status` makes (a GET of /models), with a 2 s timeout. Checked in a worker thread; the table
fills in as answers come."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work

from looptool.config import ALL_ROLES, EndpointModel, WorkspaceConfig, redact_url
from looptool.tui.widgets.column_table import ColumnTable

HEALTH_TIMEOUT_S = 2.0


def role_health(workspace: Path, config: WorkspaceConfig) -> list[tuple[str, str, str, str, str]]:
    """(role, kind, model, url, health) for every role."""
    from looptool.serving.client import endpoint_states, health_label
    from looptool.serving.server import ServerManager, server_name

    manager = ServerManager(workspace, config.serving)
    servers = {info.name: info for info in manager.known()}
    rows = []
    for role in ALL_ROLES:
        spec = config.role(role)
        inherited = "" if getattr(config, role) is not None else " (generator's)"
        if isinstance(spec, EndpointModel):
            states = [(url, health_label(problem)) for url, problem in endpoint_states(spec, HEALTH_TIMEOUT_S)]
            bad = [(url, health) for url, health in states if health != "reachable"]
            if len(states) == 1:
                health = states[0][1]
            elif not bad:
                health = f"all {len(states)} reachable"
            else:
                health = f"{len(states) - len(bad)} of {len(states)} reachable; " + ", ".join(
                    f"{redact_url(url)} {state}" for url, state in bad)
            rows.append((role, "endpoint" + inherited, spec.model, redact_url(", ".join(spec.urls)), health))
            continue
        info = servers.get(server_name(spec.model))
        if info is None:
            rows.append((role, "managed" + inherited, spec.model, "-", "stopped"))
        else:
            state = manager.state(info)
            rows.append((role, "managed" + inherited, spec.model, info.base_url,
                         "stopped (its server exited)" if state == "dead" else state))
    return rows


class EndpointHealth(ColumnTable):
    """The roles' models and whether they answer."""

    COLUMNS = (("role", None), ("kind", None), ("model", None), ("url", None), ("health", None))

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def check(self, workspace: Path, config: WorkspaceConfig) -> None:
        """Fill the table now with 'checking…', then with the answers."""
        self.clear_rows()
        for role in ALL_ROLES:
            spec = config.role(role)
            self.add_row(role, "", spec.model, "", "checking…", key=role)
        self._check(workspace, config)

    @work(thread=True, exclusive=True, group="health", exit_on_error=False)
    def _check(self, workspace: Path, config: WorkspaceConfig) -> None:
        rows = role_health(workspace, config)
        self.app.call_from_thread(self._fill, rows)

    def _fill(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        self.clear_rows()
        for row in rows:
            self.add_row(*(Text(c) for c in row), key=row[0])

    def health_of(self, role: str) -> str:
        return str(self.get_cell(role, self.ordered_columns[4].key))
