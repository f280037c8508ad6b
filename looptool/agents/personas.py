"""The personas the user agent and the expander speak as (`data/personas.txt`, one a line)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def personas() -> tuple[str, ...]:
    text = resources.files("looptool.agents").joinpath("data", "personas.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())
