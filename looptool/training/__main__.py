"""`python -m looptool.training sft|grpo --workspace W --round R [--max-steps N]`: one training
stage in a process of its own, so the accelerator memory it held is returned when it exits.
`looptool train` starts this and streams its output (see `process.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m looptool.training", description=__doc__)
    parser.add_argument("stage", choices=["sft", "grpo"])
    parser.add_argument("--workspace", "-w", type=Path, required=True)
    parser.add_argument("--round", "-r", type=int, required=True)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)

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
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
