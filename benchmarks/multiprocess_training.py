"""GRPO step time with one training process vs several (`[train] processes`, DDP under
`accelerate launch`; gloo on the CPU), side by side in one run.

For each process count this builds one workspace (a random-initialised model of the chosen shape,
synthetic tool-call samples), starts the stage with the project's own launcher
(`looptool.training.process.launcher`, as `looptool train` does: plain Python for 1 process,
`accelerate launch` for more, the cores shared out evenly) and trains a few steps of the real GRPO
stage. The reward alternates within every group (half the completions 1, half 0), so every step has
signal and runs its loss passes in full, whatever the processes. A step keeps its size whatever the
processes (`prompts_per_step` x `group` completions, shared out). It prints the median step time
(first step excluded; the first process's clock), the stage's wall time with loading and launching,
and the ratios to 1 process. `--reps` alternates the counts, so that both see the same load.

Usage: python benchmarks/multiprocess_training.py [--shape tiny] [--processes 1,2] [--group 4]
                                                  [--prompts 2] [--completion 32] [--steps 4] [--reps 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def alternating_reward(completions, **kwargs) -> list[float]:
    """1 and 0 in turn: every group (of an even size) holds both, so every step has signal."""
    return [float(i % 2) for i in range(len(completions))]


def child(workspace: Path, steps: int) -> None:
    """One training process (of several, or the only one): the real GRPO stage."""
    from looptool.config import load_config
    from looptool.training.grpo import run_grpo

    run_grpo(workspace, load_config(workspace), 1, max_steps=steps, reward_fn=alternating_reward)


def make_workspace(root: Path, model_dir: Path, processes: int, args: argparse.Namespace) -> Path:
    from looptool.config import WorkspaceConfig, save_config
    from looptool.policy.prompt import system_message
    from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
    from looptool.store import Store

    ws = root / f"ws-{processes}"
    ws.mkdir(parents=True)
    config = WorkspaceConfig(name="bench")
    config.train = config.train.model_copy(update=dict(
        model=str(model_dir), num_generations=args.group, prompts_per_step=args.prompts,
        max_completion_tokens=args.completion, save_steps=10_000, processes=processes))
    save_config(ws, config)
    tool = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    with Store.create(ws / "looptool.db") as store:
        store.upsert_samples([
            Sample(messages=[system_message([tool]), Message(role="user", content=f"Weather in city {i}?")], tools=[tool],
                   label=Label(calls=[ToolCall(name="get_weather", arguments={"city": f"city {i}"})]))
            for i in range(args.prompts * (args.steps + 1))])  # fmt: skip
    return ws


def run(ws: Path, steps: int) -> dict:
    """Train `ws` (its `[train] processes`) in a child started as `looptool train` starts one."""
    from looptool.config import load_config
    from looptool.store import Store
    from looptool.training.process import launcher, stage_env

    train = load_config(ws).train
    env = stage_env(train)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent), env.get("PYTHONPATH")]))
    cmd = [*launcher(train), "multiprocess_training", "--child", str(ws), "--steps", str(steps)]
    started = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"{train.processes} process(es) failed (exit {out.returncode}): "
                         f"{(out.stderr or out.stdout).strip().splitlines()[-3:]}")
    with Store.open(ws / "looptool.db") as store:
        rows = store.train_steps(1, "grpo")
    if [r["step"] for r in rows] != list(range(1, steps + 1)):
        raise SystemExit(f"{train.processes} process(es): step rows {[r['step'] for r in rows]}, wanted 1..{steps}")
    return {"step_times": [r["step_time_s"] for r in rows[1:]] or [rows[0]["step_time_s"]], "wall_s": wall,
            "zero_std": max(r["frac_reward_zero_std"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="tiny", choices=["tiny", "smollm2-135m"])
    parser.add_argument("--processes", default="1,2", help="process counts to compare, the first is the reference")
    parser.add_argument("--group", type=int, default=4, help="completions per prompt (even)")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--completion", type=int, default=32, help="completion length (tokens)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--reps", type=int, default=1, help="runs of each count, alternating")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    from grpo_step import build_model  # this directory is on sys.path when the script runs

    counts = [int(n) for n in args.processes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="multiprocess-bench-"))
    build_model(args.shape, root / "model")
    cores = os.cpu_count()
    print(f"GRPO, shape {args.shape}, group {args.group} x {args.prompts} prompts a step, completion "
          f"{args.completion} tokens, {args.steps} steps, {cores} CPU cores, processes {counts}, {args.reps} rep(s)")
    results: dict[int, list[dict]] = {n: [] for n in counts}
    for rep in range(args.reps):
        for n in counts:
            results[n].append(run(make_workspace(root / f"rep-{rep}", root / "model", n, args), args.steps))
    reference = None
    for n in counts:
        step = statistics.median(t for r in results[n] for t in r["step_times"])
        wall = statistics.median(r["wall_s"] for r in results[n])
        reference = reference or (step, wall)
        print(f"{n} process(es): median step {step:.2f} s, stage wall time {wall:.1f} s "
              f"(largest share of equal-reward groups {max(r['zero_std'] for r in results[n]):.2f}); "
              f"vs {counts[0]}: step x{step / reference[0]:.2f}, wall x{wall / reference[1]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
