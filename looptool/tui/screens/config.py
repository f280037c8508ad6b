"""The workspace config as its TOML file (read-only here; edit looptool.toml), and each role's
model and endpoint with its health."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from looptool.config import CONFIG_FILE, ConfigError, load_config, redact_url
from looptool.tui.widgets.endpoint_health import EndpointHealth


class ConfigScreen(Screen):
    """Config text and endpoint health."""

    BINDINGS = [Binding("h", "check_health", "Check health")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="config-title")
        with VerticalScroll(id="config-text"):
            yield Static("", id="config-body")
        yield Static(" models by role (never started from here: 'looptool serve start')", id="health-title")
        yield EndpointHealth(id="health")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "config"
        self.show_config()
        self.query_one("#config-text").focus()

    def show_config(self) -> None:
        path = self.app.workspace / CONFIG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            text = f"# cannot read {CONFIG_FILE}: {exc}"
        try:
            self.app.config = load_config(self.app.workspace)
            status = "valid"
        except ConfigError as exc:
            status = f"INVALID: {exc}"  # the app keeps the config it started with
        self.query_one("#config-title", Static).update(f" {CONFIG_FILE} (read-only here) · {status}")
        # A password inside a base_url is not put on the screen (it could be shared or recorded).
        text = redact_url(text)
        self.query_one("#config-body", Static).update(Syntax(text, "toml", theme="ansi_dark", background_color="default"))
        self.query_one(EndpointHealth).check(self.app.workspace, self.app.config)

    def action_check_health(self) -> None:
        self.show_config()
