"""LoopTool: close the loop between synthetic tool-calling data and GRPO training."""

__version__ = "0.1.0"
