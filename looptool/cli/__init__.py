"""The `looptool` command line.

Every command takes the workspace with `-w/--workspace` (default: the current directory, or
$LOOPTOOL_WORKSPACE). Errors that a user can fix (a malformed config, a busy port, an endpoint
that cannot be reached) print one line starting with `error:` and exit with code 1, before
anything is written to the workspace database.

Each command group lives in a module of its own; this one builds `app` from them. The top-level
commands are registered here, in the order `looptool --help` lists them.
"""

from __future__ import annotations

import typer

from looptool.cli import eval, experiment, export, loop, samples, seed, serve, tools, train, workspace
from looptool.cli.help import _flowing_help, first_sentence, flowing_paragraphs

__all__ = ["app", "first_sentence", "flowing_paragraphs"]

app = typer.Typer(
    help="LoopTool: synthesise tool-calling data, train with GRPO, probe, verify, expand, repeat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("init")(workspace.init)
app.command("seed")(seed.seed_command)
app.command("loop")(loop.loop_command)
app.command("pause")(loop.pause_command)
app.command("probe")(loop.probe_command)
app.command("review")(loop.review_command)
app.command("tui")(workspace.tui_command)
app.command("doctor")(workspace.doctor)
app.command("report")(workspace.report)
app.command("demo")(workspace.demo)
app.command("experiment", short_help=experiment.SHORT_HELP)(experiment.experiment)

app.add_typer(serve.serve_app, name="serve")
app.add_typer(tools.tools_app, name="tools")
app.add_typer(seed.dialogues_app, name="dialogues")
app.add_typer(train.train_app, name="train")
app.add_typer(eval.eval_app, name="eval")
app.add_typer(samples.samples_app, name="samples")
app.add_typer(export.export_app, name="export")

_flowing_help(app)
