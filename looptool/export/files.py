"""An export directory, written whole or not at all.

The files are written into a temporary sibling of the target and renamed into place at the end, so
a reader never sees half an export and a killed export leaves nothing under the target's name. A
target that holds files already is refused (one line), unless the caller forces it: then the old
directory is replaced, again by a rename.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


class ExportError(Exception):
    """An export cannot be made; the message says why in one line, and nothing was written."""


def check_target(target: Path, *, force: bool) -> None:
    """ExportError unless `target` can receive an export: absent, an empty directory, or (with
    `force`) a directory whose files may be replaced."""
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} is a file, not a directory; give a directory to export into")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ExportError(f"{target} is not empty; choose another directory, or use --force to replace what it holds")


def write_directory(target: Path, write: Callable[[Path], None], *, force: bool = False) -> Path:
    """Call `write(tmp)` to fill a fresh temporary directory beside `target`, then put it in
    `target`'s place. Whatever `write` raises, the temporary directory is removed and `target` is
    left as it was."""
    check_target(target, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
