"""`looptool demo`: the whole method, end to end, on the CPU with the embedded model.

The demo is the sequence of commands a user would type, each run as its own `looptool` process
(so each one's memory is returned when it ends) and echoed before it runs:

    init -> tools synth -> seed (dialogues, then templated tasks) -> base model on the held-out set
         -> SFT warm start -> warm start on the held-out set -> loop (2 rounds)
         -> loop --static (2 rounds) -> report -> serve stop

and it ends by showing the mechanism: the loop's GRPO learning signal (the share of groups whose
rewards were all equal, the steps with a non-zero loss) and the loop's held-out accuracy next to
the base model's and the warm start's (`experiment.md` has the tables with intervals).

Its workspace config is the default one with smaller sizes (`DEMO_SIZES`: the `cpu` preset of
`looptool init --preset cpu`, presets.py), as small as still shows each stage working, because 2
CPU cores pay for every step (docs/BENCHMARKS.md has a run's time per step and per stage). Every
command is resumable, so running the demo again continues where it stopped and skips what is done.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from looptool.config import CONFIG_FILE, DB_FILE, WorkspaceConfig, load_config, save_config
from looptool.loop.arms import static_workspace
from looptool.presets import preset_config, preset_values

# Section -> field -> value, over the defaults: the `cpu` preset of `looptool init --preset cpu`
# (presets.py says why each value is what it is), so that the demo and a CPU workspace agree.
DEMO_PRESET = "cpu"
DEMO_SIZES: dict[str, dict[str, object]] = preset_values(DEMO_PRESET)
TOOLS = 3  # synthesised tools (the templated tasks bring their own curated set)
DIALOGUES = 3  # multi-agent seed dialogues, for their traces and samples
TEMPLATED = 60  # templated exact tool-call tasks: the bulk of the training data


def demo_config(name: str) -> WorkspaceConfig:
    """The default workspace config with the demo's sizes."""
    return preset_config(name, DEMO_PRESET)


@dataclass
class Step:
    title: str
    args: list[str]  # `looptool` arguments


def demo_steps(workspace: Path, rounds: int) -> list[Step]:
    ws = ["-w", str(workspace)]
    return [
        Step("tool specs", ["tools", "synth", *ws, "--n", str(TOOLS)]),
        Step("seed dialogues", ["seed", *ws, "--n", str(DIALOGUES)]),
        Step("templated tasks", ["seed", *ws, "--templated", "--n", str(TEMPLATED)]),
        Step("base model on the held-out set", ["eval", "heldout", *ws]),
        Step("SFT warm start", ["train", "sft", *ws, "--round", "1"]),
        Step("warm start on the held-out set",
             ["eval", "heldout", *ws, "--adapter", str(workspace / "adapters" / "round-1-sft")]),
        Step("the loop", ["loop", *ws, "--rounds", str(rounds)]),
        Step("static baseline", ["loop", *ws, "--static", "--rounds", str(rounds)]),
        Step("report", ["report", *ws]),
        Step("servers stopped", ["serve", "stop", *ws]),
        Step("baseline's servers stopped", ["serve", "stop", "-w", str(static_workspace(workspace))]),
    ]


class DemoError(Exception):
    """A step of the demo failed; the message names it and how to continue."""


def run_demo(workspace: Path, *, rounds: int = 2, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run the demo in `workspace` (made with the demo's config when new); wall seconds per step."""
    started = time.monotonic()
    if not (workspace / CONFIG_FILE).exists():
        from looptool.store import Store

        workspace.mkdir(parents=True, exist_ok=True)
        save_config(workspace, demo_config(workspace.resolve().name))
        Store.create(workspace / DB_FILE).close()
        echo(f"created workspace {workspace} with the demo's sizes (see {workspace / CONFIG_FILE})")
    else:
        load_config(workspace)  # must be valid before anything runs
    seconds: dict[str, float] = {}
    for step in demo_steps(workspace, rounds):
        echo(f"\n$ looptool {' '.join(step.args)}")
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "looptool.cli", *step.args])
        seconds[step.title] = time.monotonic() - t0
        if done.returncode != 0:
            raise DemoError(f"demo step '{step.title}' failed (exit {done.returncode}); fix the cause and run "
                            f"'looptool demo -w {workspace}' again: it continues where it stopped")
    seconds["total"] = time.monotonic() - started
    from looptool.experiment_report import write_experiment_report

    write_experiment_report(workspace)
    for line in mechanism_lines(workspace):
        echo(line)
    return seconds


def mechanism_lines(workspace: Path) -> list[str]:
    """What the demo shows of the mechanism: the loop's GRPO signal, and its held-out accuracy
    next to the base model's and the warm start's."""
    from looptool.experiment_report import ALL, HELDOUT, collect_experiment

    experiment = collect_experiment(workspace)
    loop = experiment.loop
    zero_std = [v for r in loop.run.rounds for v in r.zero_std]
    losses = [v for r in loop.run.rounds for v in r.losses]
    lines = ["", "the mechanism, in the loop arm:"]
    if zero_std:
        lines.append(f"  GRPO signal: mean frac_reward_zero_std {sum(zero_std) / len(zero_std):.3f} over "
                     f"{len(zero_std)} steps (1.0: no group had rewards that differed); loss non-zero in "
                     f"{sum(1 for v in losses if v != 0)}/{len(losses)} steps")
    else:
        lines.append("  GRPO signal: no GRPO step was logged")

    def accuracy(outcomes) -> str:
        if outcomes is None:
            return "not measured"
        passed = outcomes.where(lambda category: True)
        return f"{100 * sum(passed.values()) / max(1, len(passed)):.1f}% ({sum(passed.values())}/{len(passed)})"

    final = loop.final_heldout_round
    lines.append(f"  held-out exact match ({ALL}): base {accuracy(experiment.base.get(HELDOUT))}, warm start "
                 f"{accuracy(experiment.warm_start.get(HELDOUT))}, loop round {final} "
                 f"{accuracy(loop.heldout.get(final) if final is not None else None)}")
    lines.append(f"  tables with 95% intervals and paired tests: {workspace / 'experiment.md'}")
    return lines
