"""The Textual terminal UI (`looptool tui`): the app (app.py), its screens (screens/), its widgets
(widgets/, one per module), one stylesheet (looptool.tcss), the loop as a child process
(loop_process.py) and the shaping of store rows for display (data.py, no SQL)."""
