"""Roles -> model -> endpoint -> health. Managed models: the state of the server this workspace
started (from its state file; the TUI never starts one). Endpoint models: a GET of /models with a
2 s timeout. Checked in a worker thread; the table fills in as answers come."""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.text import Text
from textual import work

from looptool.config import ALL_ROLES, EndpointModel, WorkspaceConfig, redact_url
from looptool.tui.widgets.column_table import ColumnTable

HEALTH_TIMEOUT_S = 2.0


def role_health(workspace: Path, config: WorkspaceConfig) -> list[tuple[str, str, str, str, str]]:
    """(role, kind, model, url, health) for every role."""
    from looptool.serving.server import ServerManager, server_name

    manager = ServerManager(workspace, config.serving)
    servers = {info.name: info for info in manager.known()}
    rows = []
    for role in ALL_ROLES:
        spec = config.role(role)
        inherited = "" if getattr(config, role) is not None else " (generator's)"
        if isinstance(spec, EndpointModel):
            states = [(url, _server_health(url, spec)) for url in spec.urls]
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


def _server_health(url: str, spec: EndpointModel) -> str:
    try:
        answer = httpx.get(url.rstrip("/") + "/models", timeout=HEALTH_TIMEOUT_S,
                           headers={"Authorization": f"Bearer {spec.api_key()}"})
        return "reachable" if answer.status_code < 400 else f"HTTP {answer.status_code}"
    except Exception as exc:  # noqa: BLE001 - any failure is a health state to show
        return f"unreachable ({type(exc).__name__})"


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
