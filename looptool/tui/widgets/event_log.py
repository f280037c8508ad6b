"""The newest entries of the workspace's event log, appended as they arrive."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

LEVEL_STYLES = {"error": "bold red", "warning": "yellow", "info": ""}


class EventLog(RichLog):
    """Events, oldest first; remembers the last id so each is written once."""

    def __init__(self, **kwargs) -> None:
        # wrap: a long warning is read whole, with no sideways scrolling
        super().__init__(max_lines=500, wrap=True, markup=False, highlight=False, **kwargs)
        self.last_id = 0

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        for e in events:
            if e["id"] <= self.last_id:
                continue
            self.last_id = e["id"]
            line = Text.assemble((f"{e['ts'][:19].replace('T', ' ')} ", "dim"))
            line.append(f"{e['stage']:<6} ", style="bold")
            line.append(e["message"], style=LEVEL_STYLES.get(e["level"], ""))
            self.write(line)
