"""SFT warm start: held-out parse rate and exact match of the policy before and after, side by side.

In a workspace (made if missing) with templated samples (`looptool seed --templated`: exact
labels, split by tool so the held-out tools are never trained on), this runs the project's own
commands: the base policy on the held-out samples, the SFT warm start (`looptool train sft`), and
the warm-started adapter on the same samples. It prints the two held-out tables side by side,
the share of readable answers (parse rate) of each, and SFT's step time and peak memory.

With --tools FILE the samples are built on the user's own tools instead: the file is imported
(`looptool tools import`) and the samples are `looptool seed --templated --from-tools`, so the
held-out tools are some of the user's.

With --preset cpu the workspace is made with `looptool init --preset cpu` (the sizes a new user on a
CPU gets: the warm start's learning rate, batch and data); --steps still sets the SFT steps.

Every step is resumable and skipped when done: evaluations are stored runs (asking again only
asks what is missing), and an existing `adapters/round-1-sft` is kept unless --retrain.

Usage: python benchmarks/sft_warm_start.py [--workspace runs/sft-warm-start] [--n 300]
                                           [--heldout-fraction 0.3] [--steps 64] [--retrain]
                                           [--tools FILE] [--preset cpu|gpu-24gb]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from looptool.config import DB_FILE, load_config, save_config
from looptool.eval.heldout import HELDOUT_UNREADABLE
from looptool.eval.show import error_summary, heldout_table
from looptool.store import Store


def looptool(*args: str) -> None:
    """Run a looptool command, its output shown as it comes; stop on failure."""
    print("$ looptool " + " ".join(args), flush=True)
    code = subprocess.run([sys.executable, "-m", "looptool.cli", *args]).returncode
    if code != 0:
        sys.exit(f"looptool {args[0]} failed with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("runs/sft-warm-start"))
    parser.add_argument("--n", type=int, default=300, help="templated samples (train + held-out)")
    parser.add_argument("--heldout-fraction", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=64, help="SFT steps (batch [train] sft_batch_size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="train again even if adapters/round-1-sft exists")
    parser.add_argument("--tools", type=Path, help="a tools file (e.g. OpenAI tools JSON): tasks on these tools")
    parser.add_argument("--preset", choices=["cpu", "gpu-24gb"], help="make the workspace with `init --preset`")
    args = parser.parse_args()
    ws = args.workspace

    if not (ws / DB_FILE).exists():
        looptool("init", str(ws), *(["--preset", args.preset] if args.preset else []))
    config = load_config(ws)
    save_config(ws, config.model_copy(update={"seed": config.seed.model_copy(
        update={"heldout_fraction": args.heldout_fraction})}))
    if args.tools:
        looptool("tools", "import", str(args.tools), "-w", str(ws))  # (the same file again imports nothing)
        looptool("seed", "-w", str(ws), "--templated", "--from-tools", "--n", str(args.n), "--seed", str(args.seed))
    else:
        looptool("seed", "-w", str(ws), "--templated", "--n", str(args.n), "--seed", str(args.seed))

    looptool("eval", "heldout", "-w", str(ws))
    looptool("serve", "stop", "-w", str(ws))  # the CPU and memory go to training
    adapter = ws / "adapters" / "round-1-sft"
    trained = None
    if args.retrain or not adapter.is_dir():
        started = time.monotonic()
        looptool("train", "sft", "-w", str(ws), "--round", "1", "--max-steps", str(args.steps))
        trained = time.monotonic() - started
    looptool("eval", "heldout", "-w", str(ws), "--adapter", str(adapter))
    looptool("serve", "stop", "-w", str(ws))

    with Store.open(ws / DB_FILE) as store:
        runs = store.eval_runs("heldout")
        base = next(r for r in runs if not r["adapter"] and not r["round"])
        after = next(r for r in runs if r["adapter"] and Path(r["adapter"]).name == adapter.name)
        scores = [store.eval_scores(r["id"]) for r in (after, base)]
        errors = [store.eval_error_counts(r["id"]) for r in (after, base)]
        steps = store.train_steps(1, "sft")
        by_split = store.sample_counts_by_split()
    print(f"\nSFT warm start, embedded model: {by_split.get('train', 0)} training samples, "
          f"{by_split.get('heldout', 0)} held-out samples on tools never trained on")
    for line in heldout_table([after, base], scores):
        print(line)
    calls = [_exact(scores[1], "call"), _exact(scores[0], "call")]  # base, after
    print(f"exact match on call samples: base {calls[0]:.1%} -> after SFT {calls[1]:.1%}")
    for name, errs, sc in zip(("after SFT", "base     "), errors, scores):
        print(f"{name}: " + error_summary(errs, sum(s["total"] for s in sc.values()), HELDOUT_UNREADABLE))
    if steps:
        times = sorted(s["step_time_s"] for s in steps if "step_time_s" in s)
        peak = max(s.get("peak_memory_mb", 0) for s in steps)
        last = steps[-1].get("loss", float("nan"))
        median = times[len(times) // 2] if times else float("nan")
        print(f"SFT: {len(steps)} steps, median step {median:.1f} s, peak memory {peak:.0f} MiB, last loss {last:.3f}"
              + (f", {trained:.0f} s with loading and saving" if trained else ""))


def _exact(scores: dict, kind: str) -> float:
    """Exact-match share of the samples whose label is of this kind ("call" or "text")."""
    picked = [v for c, v in scores.items() if c.rsplit("/", 1)[-1] == kind]
    total = sum(v["total"] for v in picked)
    return sum(v["passed"] for v in picked) / total if total else float("nan")


if __name__ == "__main__":
    main()
