"""`python -m looptool.cli ...`: how the loop, the demo, the experiment and the TUI run a command
in a process of its own."""

from looptool.cli import app

app()
