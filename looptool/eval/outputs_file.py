"""Reading a file of precomputed answers: JSON Lines of `{"id": ..., "output": ...}`, one per entry.

Shared by the suites that score answers produced elsewhere (`eval bfcl --outputs`, `eval acebench
--outputs`): the reading is strict and every error is one line naming file:line and field. What
makes an id or an output valid is the suite's, given as `check(entry_id, output, where)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.config import ConfigError
from looptool.schema import JSONLimitError, load_json


class OutputsFileError(ConfigError):
    """A precomputed outputs file is malformed; the message names the file, line and field."""


def read_output_lines(path: Path, check: Callable[[str, Any, str], None], *, suite: str) -> dict[str, Any]:
    """id -> output for every non-blank line; `check` raises OutputsFileError for a bad id or output."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OutputsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise OutputsFileError(f"{path}: not UTF-8 text") from None
    outputs: dict[str, Any] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = load_json(line)
        except JSONLimitError as exc:
            raise OutputsFileError(f"{where}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise OutputsFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise OutputsFileError(f"{where}: expected an object with 'id' and 'output'")
        entry_id, output = row.get("id"), row.get("output")
        if not isinstance(entry_id, str) or not entry_id:
            raise OutputsFileError(f"{where}: id: expected a {suite} entry id string, got {entry_id!r:.60}")
        check(entry_id, output, where)
        if entry_id in outputs:
            raise OutputsFileError(f"{where}: id: {entry_id!r} appears twice")
        outputs[entry_id] = output
    if not outputs:
        raise OutputsFileError(f"{path}: no outputs in the file")
    return outputs
