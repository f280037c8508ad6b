"""Errors that every layer may raise, defined below all of them.

`ConfigError` is raised by the config loader and by whatever checks a setting or an option (the
benchmark category lists, for one); `looptool.config` re-exports it. `TrainingError` is raised where
training cannot start or did not finish, the policy's weights not found among them;
`looptool.training.stage` re-exports it.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be read or does not validate. The message is one line."""


class TrainingError(Exception):
    """Training cannot start or did not finish; the message says why in one line."""
