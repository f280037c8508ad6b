"""`python -m looptool.training sft|grpo --workspace W --round R [--max-steps N]`: one training
stage in a process of its own, so the accelerator memory it held is returned when it exits.
`looptool train` starts this and streams its output (see `process.py`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m looptool.training", description=__doc__)
    parser.add_argument("stage", choices=["sft", "grpo"])
    parser.add_argument("--workspace", "-w", type=Path, required=True)
    parser.add_argument("--round", "-r", type=int, required=True)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" in os.environ:  # one of several processes of `accelerate launch`
        from looptool.training.process import _die_with_parent

        parent = os.getppid()
        _die_with_parent()  # the launcher killed (looptool train stopped): this process ends too
        if os.getppid() != parent:
            return 1  # the launcher died before the line above

    from looptool.config import ConfigError, load_config
    from looptool.store import StoreError
    from looptool.training.stage import TrainingError

    try:
        config = load_config(args.workspace)
        if args.stage == "sft":
            from looptool.training.sft import run_sft

            run_sft(args.workspace, config, args.round, max_steps=args.max_steps)
        else:
            from looptool.training.grpo import run_grpo

            run_grpo(args.workspace, config, args.round, max_steps=args.max_steps)
    except (ConfigError, StoreError, TrainingError) as exc:
        rank = int(os.environ.get("RANK", "0"))
        # Several processes fail alike: the first one's line is shown, the others' are kept in the log.
        print(f"error: {exc}" if rank == 0 else f"error in process {rank}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
