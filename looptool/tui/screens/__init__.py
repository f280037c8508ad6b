"""The TUI's screens: dashboard, samples, traces, sample detail, review, config."""
