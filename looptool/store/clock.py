"""The clock that every timestamp the workspace database writes comes from.

The store's modules call it as `clock.utc_now()`, looked up at each call, so that a test which
patches `looptool.store.clock.utc_now` fixes every timestamp the store writes in one place.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """Current time as a UTC ISO-8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
