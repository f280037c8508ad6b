"""The TUI's widgets, one per module; each shows one thing and knows no SQL."""
