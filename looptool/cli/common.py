"""What the commands share: the workspace option, opening a workspace, turning the errors a user
can fix into one line, the console and the progress bar."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from looptool.config import DB_FILE, ConfigError, WorkspaceConfig, load_config
from looptool.store import Store, StoreError, database_error_line


Workspace = Annotated[
    Path,
    typer.Option(
        "--workspace", "-w", envvar="LOOPTOOL_WORKSPACE", help="Workspace directory (holds looptool.toml and looptool.db)."
    ),
]


def _user_errors(fn):
    """Turn the errors a user can fix into `error: <one line>` and exit code 1."""
    from looptool.demo import DemoError
    from looptool.embedded import EmbeddedModelError
    from looptool.experiment import ExperimentError
    from looptool.export.files import ExportError
    from looptool.loop.arms import ArmError
    from looptool.loop.control import LoopError
    from looptool.seed.scenarios import NoToolsError
    from looptool.serving.client import ModelOutputError
    from looptool.serving.server import ServingError
    from looptool.tools_sim.importers import ToolImportError
    from looptool.training.stage import TrainingError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (
            ConfigError, StoreError, ServingError, ModelOutputError, EmbeddedModelError, ToolImportError, NoToolsError,
            TrainingError, LoopError, DemoError, ArmError, ExperimentError, ExportError,
        ) as exc:  # fmt: skip
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as exc:
            # Any SQLite error that got this far: the Store raises the ones about the file as
            # StoreError already, so this is LangGraph's checkpointer (its own connection) or a
            # bug; the transaction it was in has been rolled back.
            where = Path(kwargs.get("workspace") or ".") / DB_FILE
            typer.echo(f"error: {database_error_line(where, exc)}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # a file or directory that cannot be made, read or written
            typer.echo(f"error: {_os_error_line(exc)}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {exc.strerror or exc}" + (f" -> {exc.filename2}" if exc.filename2 else "")


def _check_writable(path: Path, what: str) -> None:
    """StoreError unless `path` (or, if it does not exist yet, the directory it would be made in)
    can be written, so that a command that writes fails before it starts work. os.access asks
    the OS with the real uid; a read-only mount answers no even for root."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise StoreError(f"{what} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK):
        raise StoreError(f"{what} {path}: {existing} is read-only; nothing was written")


def _open_workspace(workspace: Path, *, write: bool = True) -> tuple[WorkspaceConfig, Path]:
    """Validate the config and check the database exists, without writing anything. With
    `write`, also check that the database and its directory (SQLite's WAL files live there) can
    be written, so that a read-only workspace stops a command before its work starts."""
    config = load_config(workspace)
    db_path = workspace / DB_FILE
    Store.open(db_path).close()  # raises StoreError if missing, damaged or newer; opening does not write
    if write:
        _check_writable(db_path, "workspace database")
        _check_writable(workspace, "workspace")
    return config, db_path


# The round a command works on once it is trained (train, probe).
TrainRound = Annotated[int, typer.Option("--round", "-r", min=1, help="The round to train (1, 2, ...).")]


def _console(width: int | None = None):
    from rich.console import Console

    # Made per command (typer's test runner swaps stdout); no markup: labels hold [calls(...)].
    return Console(highlight=False, markup=False, width=width)


class ProgressBar:
    """One running progress bar: `update` moves it (completed=, total=, detail=), `print` writes a
    line above it without breaking it."""

    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def update(self, **fields) -> None:
        self._progress.update(self._task, **fields)

    def print(self, line: str) -> None:
        self._progress.console.print(line)


@contextlib.contextmanager
def progress_bar(label: str, *, total: int | None, completed: int = 0, stderr: bool = False) -> Iterator[ProgressBar]:
    """The progress bar of every command that shows one: its label, the bar, done/total, a detail
    the command fills in, and the time elapsed. It stays on screen when done. `stderr` draws it
    there, for a command whose stdout holds results (which may be JSON)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=False, console=Console(stderr=True) if stderr else None) as progress:
        yield ProgressBar(progress, progress.add_task(label, total=total, completed=completed, detail=""))
