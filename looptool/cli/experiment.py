"""`looptool experiment`: the loop against static (and ablations) at equal GRPO steps.

The top-level commands here are registered on `app` in looptool/cli/__init__.py, in the order
`looptool --help` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from looptool.cli.common import Workspace, _user_errors


# The docstring's first sentence is a question; the command list shows this line instead.
SHORT_HELP = ("Does the loop teach? The loop against static (and ablations) from one warm start at equal GRPO steps, "
              "on held-out samples and BFCL, with a report.")


@_user_errors
def experiment(
    workspace: Workspace = Path("runs/experiment"),
    arms: Annotated[str, typer.Option(
        help="Comma-separated arms to compare with the loop: static (the paper's baseline: the whole seed pool "
        "every round) and the ablations no-jglv, random-hppl, no-edde, repeat-errors ('looptool loop --help').",
    )] = "loop,static",
    seed: Annotated[int, typer.Option(help="Seed of the data (which tools are held out, the samples), the data "
                                           "order and the sampling of every stage.")] = 0,
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds per arm (default: \\[loop] rounds).")] = None,
    acebench: Annotated[int, typer.Option(min=0, help="Also score the base model, the warm start and each arm's final "
                                          "adapter on the first N entries of each ACEBench-en Normal and Special "
                                          "category (0: not run; 10 adds several minutes per model on 2 cores).")] = 0,
) -> None:
    """Does the loop teach? From one SFT warm start, the loop and the arms it is compared with train
    the same rounds at the same GRPO steps per round; every model answers the same held-out samples
    (tools never trained on) and the same BFCL-v3 subset (50 entries of each single-turn category).
    Writes experiment.md and its plots into the workspace: accuracy per round per arm with 95%
    Wilson intervals, paired McNemar tests on the same items, GRPO reward and frac_reward_zero_std
    per step, data composition and wall time per stage. About an hour on 2 CPU cores with the
    embedded model where the CPU has AVX512-BF16; several hours on an AVX2-only CPU (float32
    throughout). Resumable: run it again after an interruption and it goes on."""
    from looptool.experiment import run_experiment

    run_experiment(workspace, arms=arms.split(","), rounds=rounds, seed=seed, acebench_limit=acebench,
                   echo=typer.echo)
