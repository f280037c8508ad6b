"""How long the test suite takes: this tree's `make test-unit` (or `make test`) against the same
target of an older commit, run one after the other on this machine, with the ratio.

    python benchmarks/test_suite_time.py                      # the fast subset, vs this tree only
    python benchmarks/test_suite_time.py --baseline 1ca8bf9   # ... and vs that commit's test-unit
    python benchmarks/test_suite_time.py --target test        # the whole suite (minutes to an hour)

The baseline is checked out into a temporary git worktree and run with this tree's .venv (so the
same packages; `make -o install`, nothing is installed); each run's wall time, CPU time of it and its children, and pytest's summary line
are printed. The environment is the caller's (PYTHONDONTWRITEBYTECODE included): the Makefile
decides what the targets change.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_target(tree: Path, target: str, venv: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the children, pytest's last line) of `make TARGET` in `tree`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    # `-o install`: the environment is this tree's, as it is; a baseline must not reinstall it.
    done = subprocess.run(["make", "-s", "-o", "install", target, f"VENV={venv}"], cwd=tree, capture_output=True,
                          text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if " passed" in line or " failed" in line), lines[-1] if lines else "")
    if done.returncode != 0:
        summary += f"  (make exited {done.returncode})"
    return wall, cpu, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="test-unit", choices=["test-unit", "test"])
    parser.add_argument("--baseline", help="a commit whose same target is timed too, before this tree's")
    args = parser.parse_args()
    venv = ROOT / ".venv"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"make {args.target} on {cores} cores")
    results = {}
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=ROOT, check=True,
                           capture_output=True)
            try:
                results[args.baseline] = run_target(tree, args.target, venv)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    results["this tree"] = run_target(ROOT, args.target, venv)
    for name, (wall, cpu, summary) in results.items():
        print(f"{name:>12}: {wall:7.1f} s wall, {cpu:7.1f} s CPU   {summary}")
    if args.baseline:
        old, new = results[args.baseline][0], results["this tree"][0]
        print(f"wall time: this tree takes {new / old:.2f}x the baseline's ({old / new:.2f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
