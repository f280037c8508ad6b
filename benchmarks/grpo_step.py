"""GRPO step time and peak memory, LoRA vs QLoRA (vs LoRA under bf16 autocast on the CPU: mode
`lora-bf16`; a `-merged` suffix samples the groups from the merged copy, `[train] rollouts =
"merged-copy"`, where the other modes use TRL's `generate`; an `-allrows` suffix computes the
loss's passes for every completion, where the project leaves out those of groups with equal rewards),
for a model shape (random init: nothing to download).

For each mode, in a fresh process (so each peak is its own), this builds a random-initialised
checkpoint of the chosen shape, a temporary workspace with synthetic tool-call samples, and runs
the project's real GRPO stage (`looptool.training.grpo.run_grpo`) for a few steps with a reward
that differs within groups. Random weights rarely emit EOS, so completions run to the full
`--completion` length: the worst case. It prints the median step time (first step excluded) and
peak memory per mode -- CUDA allocator peak on a GPU, peak resident set of the process on the CPU --
and the QLoRA/LoRA ratios.

Shapes: `smollm2-135m` (the embedded model's config), `qwen3-8b` (Qwen3-8B's published shape:
36 layers, hidden 4096, 32/8 heads, intermediate 12288, vocab 151936; a GPU is needed), `tiny`.

Usage: python benchmarks/grpo_step.py [--shape smollm2-135m] [--group 8] [--prompts 1]
                                      [--completion 64] [--prompt-words 0] [--equal-share 0]
                                      [--steps 3]
                                      [--modes lora,qlora,lora-bf16,lora-merged,lora-bf16-merged]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

QWEN3_8B = dict(hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=12288, vocab_size=151936, head_dim=128, max_position_embeddings=40960)


def build_model(shape: str, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from looptool.embedded import materialise

    source = materialise(log=lambda *a: None)
    config = AutoConfig.from_pretrained(str(source))
    if shape == "tiny":
        config.update(dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16))
    elif shape == "qwen3-8b":
        from transformers import Qwen3Config

        config = Qwen3Config(**QWEN3_8B, tie_word_embeddings=False, bos_token_id=config.bos_token_id,
                             eos_token_id=config.eos_token_id)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(str(target))
    # The embedded tokenizer serves every shape: token ids beyond its vocabulary are never produced
    # by it, and a random model's outputs are only counted, not read.
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(target))


def one_mode(args: argparse.Namespace, mode: str) -> dict:
    """Runs in a child process: the real GRPO stage for a few steps; prints a JSON result line."""
    import random

    from looptool.config import WorkspaceConfig, save_config
    from looptool.policy.prompt import system_message
    from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
    from looptool.store import Store
    from looptool.training.grpo import run_grpo

    root = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    model_dir = root / "model"
    build_model(args.shape, model_dir)
    ws = root / "ws"
    ws.mkdir()
    config = WorkspaceConfig(name="bench")
    config.train = config.train.model_copy(update=dict(
        model=str(model_dir), quantization="nf4" if mode == "qlora" else "none", num_generations=args.group,
        cpu_precision="bfloat16" if mode.startswith("lora-bf16") else "float32",
        rollouts="merged-copy" if "-merged" in mode else "generate",
        prompts_per_step=args.prompts, max_completion_tokens=args.completion, save_steps=10_000, lora_r=16))
    save_config(ws, config)
    filler = " ".join(["weather"] * args.prompt_words)  # a longer prompt, as real tool lists make it
    tool = ToolSpec(name="get_weather", description=f"Current weather in a city. {filler}", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    with Store.create(ws / "looptool.db") as store:
        store.upsert_samples([
            Sample(messages=[system_message([tool]), Message(role="user", content=f"Weather in city {i}?")], tools=[tool],
                   label=Label(calls=[ToolCall(name="get_weather", arguments={"city": f"city {i}"})]))
            for i in range(args.prompts * (args.steps + 1))])  # fmt: skip
    if mode.endswith("-allrows"):
        from looptool.training import grpo

        grpo.rows_with_signal = lambda trainer, inputs: inputs
    rng = random.Random(0)
    equal = {i for i in range(args.prompts * (args.steps + 1)) if rng.random() < args.equal_share}

    def reward(prompts, completions, **kw) -> list[float]:
        """Equal rewards for the groups of the prompts in `equal`, coin flips for the others."""
        asked = [int(re.search(r"Weather in city (\d+)\?", p).group(1)) for p in prompts]
        return [1.0 if i in equal else float(rng.random() < 0.5) for i in asked]

    result = run_grpo(ws, config, 1, max_steps=args.steps, reward_fn=reward)
    with Store.open(ws / "looptool.db") as store:
        steps = store.train_steps(1, "grpo")
    times = [s["step_time_s"] for s in steps[1:]] or [steps[0]["step_time_s"]]
    return {"mode": mode, "steps": result.steps, "step_time_s": statistics.median(times),
            "peak_memory_mb": max(s["peak_memory_mb"] for s in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="smollm2-135m", choices=["tiny", "smollm2-135m", "qwen3-8b"])
    parser.add_argument("--group", type=int, default=8, help="completions per prompt")
    parser.add_argument("--prompts", type=int, default=1, help="prompts per step")
    parser.add_argument("--completion", type=int, default=64, help="completion length (tokens)")
    parser.add_argument("--prompt-words", type=int, default=0, help="words added to the tool's description")
    parser.add_argument("--equal-share", type=float, default=0.0,
                        help="share of the prompts whose groups get equal rewards (no signal)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--modes", default="lora,qlora")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(one_mode(args, args.child)), flush=True)
        return
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"GRPO step, shape {args.shape}, group {args.group} x {args.prompts} prompt(s), completion "
          f"{args.completion} tokens, prompt +{args.prompt_words} words, equal-reward share {args.equal_share}, "
          f"{args.steps} steps, on {device}")
    results = {}
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            print(f"{mode}: failed (exit {out.returncode}): {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
            continue
        results[mode] = json.loads(line.removeprefix("RESULT "))
        r = results[mode]
        print(f"{mode:>9}: median step {r['step_time_s']:.2f} s, peak memory {r['peak_memory_mb']:.0f} MiB")
    if {"lora", "lora-bf16"} <= set(results):
        lora, bf16 = results["lora"], results["lora-bf16"]
        print(f"bf16 autocast/float32: step time x{bf16['step_time_s'] / lora['step_time_s']:.2f}, "
              f"peak memory x{bf16['peak_memory_mb'] / lora['peak_memory_mb']:.2f}")
    for plain in ("lora", "lora-bf16"):
        if {plain, f"{plain}-merged"} <= set(results):
            print(f"{plain}: merged-copy rollouts/generate: step time "
                  f"x{results[plain + '-merged']['step_time_s'] / results[plain]['step_time_s']:.2f}, peak memory "
                  f"x{results[plain + '-merged']['peak_memory_mb'] / results[plain]['peak_memory_mb']:.2f}")
    for full in [m for m in results if m.endswith("-allrows")]:
        part = full.removesuffix("-allrows")
        if part in results:
            print(f"{part}: leaving out completions without signal/computing all: step time "
                  f"x{results[part]['step_time_s'] / results[full]['step_time_s']:.2f}")
    if {"lora", "qlora"} <= set(results):
        lora, qlora = results["lora"], results["qlora"]
        print(f"QLoRA/LoRA: step time x{qlora['step_time_s'] / lora['step_time_s']:.2f}, "
              f"peak memory x{qlora['peak_memory_mb'] / lora['peak_memory_mb']:.2f}")


if __name__ == "__main__":
    main()
