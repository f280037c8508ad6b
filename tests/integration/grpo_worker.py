"""One of the processes of a two-process GRPO run that tests/integration/test_training_scale.py
starts with the stage's own launcher: three steps with a reward that differs within every group
(so every step has a gradient for DDP to average), then each process writes the LoRA weights it
ended with to `<workspace>/rank-<RANK>.safetensors`, for the test to compare.

    python -m accelerate.commands.launch ... -m tests.integration.grpo_worker WORKSPACE
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def length_parity_reward(completions, **kwargs) -> list[float]:
    return [float(len(c) % 2) for c in completions]


def main(workspace: Path) -> None:
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from looptool.config import load_config
    from looptool.training.grpo import run_grpo

    result = run_grpo(workspace, load_config(workspace), 1, max_steps=3, reward_fn=length_parity_reward)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(result.model).items()}
    save_file(weights, str(workspace / f"rank-{os.environ['RANK']}.safetensors"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
