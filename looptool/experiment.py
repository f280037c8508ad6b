"""`looptool experiment`: does the loop teach? The loop against the static baseline (and any
ablation arms) from one SFT warm start, at equal GRPO steps, measured on the same items.

The experiment is the sequence of commands a user would type, each run as its own `looptool`
process (its memory is returned when it ends) and echoed before it runs:

    init -> tools synth -> seed (dialogues, then templated tasks)
         -> eval base (held-out, BFCL subset) -> SFT warm start -> eval warm start
         -> loop (R rounds; each round's adapter on the held-out set), its final adapter on the BFCL subset
            (and, with --acebench N, every model named here also on an ACEBench-en subset)
         -> each other arm (the same rounds, the loop's GRPO steps per round), the same
         -> experiment.md

Every arm starts from the same warm start and trains exactly the loop's GRPO steps in each round
(loop/arms.py); every model answers the same held-out samples and the same BFCL entries (the first
`BFCL_LIMIT` of each category), so arms are compared item by item (experiment_report.py).

The data can teach on a CPU: templated tasks with exact labels over the curated tools, split by
tool into train and held-out (the held-out tools are never trained on), plus a few dialogues
written by the embedded model; error samples are expanded by code (`[loop] expander = auto`).
The sizes (`EXPERIMENT_SIZES`) were chosen so that the whole run fits about an hour on 2 CPU cores
with AVX512-BF16; where the CPU has only AVX2 (float32 throughout) it takes several hours.

`--seed S` changes the data (which tools are held out, the samples), the data order and the
sampling of every stage. Resumable: each finished step is written to `experiment.json` with its
wall time and skipped when the command runs again; a step killed half-way continues where it was
(each command is resumable on its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from looptool.config import CONFIG_FILE, DB_FILE, WorkspaceConfig, load_config, save_config
from looptool.loop.arms import ARMS, LOOP, STATE_FILE, STATIC, arm_workspace, check_arm

# Section -> field -> value, over the defaults. Why each: 2 CPU cores pay for every step, and the
# comparison needs a few hundred held-out items to tell 5 points from chance.
EXPERIMENT_SIZES: dict[str, dict[str, object]] = {
    "seed": {
        "heldout_fraction": 0.3,  # 9 of the 30 curated tools held out; about 30% of the samples
        "generated_tools_share": 0.5,  # half the training samples on tools made by code, which the warm start
                                       # cannot learn by heart (docs/EXPERIMENTS.md, seed 100)
    },
    "eval": {
        "max_tokens": 160,  # the longest label (three calls) is about 126 tokens; rambling answers stop early
    },
    "train": {
        "sft_max_steps": 48,  # the warm start: 48 x 8 sequences (after 32 it solved 4% of the held-out calls, too
                              # few for call prompts to give GRPO mixed groups; docs/EXPERIMENTS.md, seed 0)
        "sft_data": "seed",  # over the whole seed pool (about 490), not round 1's 24 samples 16 times over
        "sft_learning_rate": 1e-3,  # after 48 steps: 24.6% of the held-out calls, against 13.8% at 2e-4 (seed 100)
        "sft_batch_size": 8,
        "learning_rate": 1e-4,  # a LoRA on a 135M policy moves in tens of steps at this rate, not at 1e-5
        "num_generations": 8,  # groups of 8: a prompt solved 1 time in 8 still gives a gradient
        "prompts_per_step": 2,
        "max_completion_tokens": 160,  # the longest training label is about 126 tokens (three calls)
        "max_prompt_tokens": 768,
        "save_steps": 4,
        "reward": "partial",  # a call with the right tool scores above a text answer, so call prompts give a gradient
                              # (docs/EXPERIMENTS.md, seed 100, fourth settings run)
        "beta": 0.3,  # a KL term towards the warm start (kl_reference), so that rounds of no-call errors cannot trade
                      # every call for text (fifth run: 0.1 did not hold it; sixth run: 0.3 did)
    },
    "loop": {
        "rounds": 3,
        "grpo_steps": 12,  # 12 steps x 2 prompts = 24 prompts: one pass over a round
        "round_size": 24,
        "expansions_per_error": 1,  # at 2, expansions crowded out fresh seed and rounds grew too hard
        "expander": "auto",  # exact error samples are expanded by code; the 135M expander writes noise
        "eval_bfcl_categories": "",  # BFCL once per arm, on its final adapter (below), not every round
        "keep_no_call_share": True,  # a 24-sample round of missing-argument errors tipped the call/no-call
                                     # threshold; every round keeps the seed pool's share (sixth settings run)
    },
}
TOOLS = 2  # synthesised tools, for the model-written dialogues
DIALOGUES = 2  # multi-agent seed dialogues written by the embedded model (about 2 minutes each)
TEMPLATED = 700  # templated exact tool-call tasks: about 490 train, 210 held-out
BFCL_CATEGORIES = "simple,multiple,parallel,parallel_multiple,irrelevance"
BFCL_LIMIT = 50  # the first 50 entries of each category, the same for every model
ACEBENCH_CATEGORIES = "normal,special"  # with `--acebench N`: the first N entries of each, for every model
DEFAULT_ARMS = (LOOP, STATIC)


class ExperimentError(Exception):
    """The experiment cannot start or a step failed; the message names it and how to go on."""


def experiment_config(name: str, seed: int) -> WorkspaceConfig:
    """The default workspace config with the experiment's sizes and seed."""
    config = WorkspaceConfig(name=name)
    for section, values in EXPERIMENT_SIZES.items():
        setattr(config, section, getattr(config, section).model_copy(update=values))
    config.train = config.train.model_copy(update={"seed": seed})
    return WorkspaceConfig.model_validate(config.model_dump())  # validated like a loaded file


def parse_arms(text: str) -> list[str]:
    """'loop,static,no-edde' -> the arms, loop first, each once; the loop is always run."""
    arms = [check_arm(a.strip()) for a in text.split(",") if a.strip()]
    return [LOOP] + [a for a in ARMS if a != LOOP and a in arms]


@dataclass
class Step:
    key: str  # what experiment.json records it under
    title: str
    args: list[str]  # `looptool` arguments


def experiment_steps(workspace: Path, arms: Sequence[str], rounds: int, seed: int,
                     acebench_limit: int = 0) -> list[Step]:
    """The experiment's commands in order; with `acebench_limit` N > 0 the base model, the warm start
    and each arm's final adapter also answer the first N entries of each ACEBench-en Normal and
    Special category (right after their BFCL subset, on the same server)."""
    ws = ["-w", str(workspace)]
    sft = str(workspace / "adapters" / "round-1-sft")
    bfcl = ["--categories", BFCL_CATEGORIES, "--limit", str(BFCL_LIMIT)]
    acebench = ["--categories", ACEBENCH_CATEGORIES, "--limit", str(acebench_limit)]
    steps = [
        Step("tools", "tool specs", ["tools", "synth", *ws, "--n", str(TOOLS)]),
        Step("dialogues", "seed dialogues", ["seed", *ws, "--n", str(DIALOGUES), "--seed", str(seed)]),
        Step("templated", "templated tasks", ["seed", *ws, "--templated", "--n", str(TEMPLATED), "--seed", str(seed)]),
        Step("base-heldout", "base model: held-out", ["eval", "heldout", *ws]),
        Step("base-bfcl", "base model: BFCL-v3 subset", ["eval", "bfcl", *ws, *bfcl]),
        *([Step("base-acebench", "base model: ACEBench-en subset", ["eval", "acebench", *ws, *acebench])]
          if acebench_limit else []),
        Step("sft", "SFT warm start", ["train", "sft", *ws, "--round", "1"]),
        Step("sft-heldout", "warm start: held-out", ["eval", "heldout", *ws, "--adapter", sft]),
        Step("sft-bfcl", "warm start: BFCL-v3 subset", ["eval", "bfcl", *ws, "--adapter", sft, *bfcl]),
        *([Step("sft-acebench", "warm start: ACEBench-en subset",
                ["eval", "acebench", *ws, "--adapter", sft, *acebench])] if acebench_limit else []),
    ]
    for arm in arms:
        steps.append(Step(f"arm-{arm}", f"the {arm} arm, {rounds} rounds",
                          ["loop", *ws, "--arm", arm, "--rounds", str(rounds)]))
        # Right after the arm, while the server of its last round's adapter is still up.
        arm_ws = ["-w", str(arm_workspace(workspace, arm)), "--round", str(rounds)]
        steps.append(Step(f"bfcl-{arm}", f"the {arm} arm's round {rounds}: BFCL-v3 subset",
                          ["eval", "bfcl", *arm_ws, *bfcl]))
        if acebench_limit:
            steps.append(Step(f"acebench-{arm}", f"the {arm} arm's round {rounds}: ACEBench-en subset",
                              ["eval", "acebench", *arm_ws, *acebench]))
        # Its servers go: the next arm starts its own, and two policies do not fit 2 cores.
        steps.append(Step(f"stop-{arm}", f"the {arm} arm's servers stopped",
                          ["serve", "stop", "-w", str(arm_workspace(workspace, arm))]))
    return steps


def _read_state(workspace: Path) -> dict:
    path = workspace / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_state(workspace: Path, state: dict) -> None:
    path = workspace / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def prepare_workspace(workspace: Path, seed: int, echo: Callable[[str], None]) -> dict:
    """Make the workspace with the experiment's config when new; check an existing one was made
    for the same seed. Returns the recorded state."""
    if not (workspace / CONFIG_FILE).exists():
        from looptool.store import Store

        workspace.mkdir(parents=True, exist_ok=True)
        save_config(workspace, experiment_config(workspace.resolve().name, seed))
        Store.create(workspace / DB_FILE).close()
        _write_state(workspace, {"seed": seed, "steps": {}})
        echo(f"created workspace {workspace} with the experiment's sizes and seed {seed} (see "
             f"{workspace / CONFIG_FILE})")
    config = load_config(workspace)  # must be valid before anything runs
    state = _read_state(workspace) or {"seed": config.train.seed, "steps": {}}
    if state.get("seed") != seed:
        raise ExperimentError(f"{workspace} holds the experiment with seed {state.get('seed')}; give --seed "
                              f"{state.get('seed')} to go on with it, or another directory for seed {seed}")
    return state


def run_experiment(workspace: Path, *, arms: Sequence[str] = DEFAULT_ARMS, rounds: int | None = None, seed: int = 0,
                   acebench_limit: int = 0, echo: Callable[[str], None] = print) -> Path:
    """Run (or go on with) the experiment in `workspace`; returns the report's path."""
    from looptool.experiment_report import write_experiment_report

    workspace = Path(workspace)
    state = prepare_workspace(workspace, seed, echo)
    rounds = rounds or load_config(workspace).loop.rounds
    done: dict[str, float] = state.setdefault("steps", {})
    for step in experiment_steps(workspace, parse_arms(",".join(arms)), rounds, seed, acebench_limit):
        if step.key in done:
            echo(f"done already: {step.title} ({done[step.key]:.0f}s)")
            continue
        echo(f"\n$ looptool {' '.join(step.args)}")
        started = time.monotonic()
        finished = subprocess.run([sys.executable, "-m", "looptool.cli", *step.args])
        if finished.returncode != 0:
            raise ExperimentError(f"experiment step '{step.title}' failed (exit {finished.returncode}); fix the cause "
                                  f"and run 'looptool experiment -w {workspace} --seed {seed}' again: it goes on "
                                  "from that step")
        done[step.key] = round(time.monotonic() - started, 1)
        _write_state(workspace, state)
    report = write_experiment_report(workspace, seed_label=str(seed))
    echo(f"\nreport: {report}")
    return report
