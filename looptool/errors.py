"""Errors that every layer may raise, defined below all of them.

`ConfigError` is raised by the config loader and by whatever checks a setting or an option (the
benchmark category lists, for one); `looptool.config` re-exports it.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be read or does not validate. The message is one line."""
