"""bfloat16 autocast vs float32 for training the embedded model on the CPU, interleaved in one
process (so both see the same machine load): a LoRA forward+backward pass over a batch of
prompt-length sequences (what SFT and GRPO's loss pay), and sampling completions with
`generate` (what GRPO's rollouts pay). Prints median seconds per mode and the ratio.

Usage: python benchmarks/cpu_bf16.py [--batch 8] [--tokens 350] [--new-tokens 48] [--reps 4]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=350, help="sequence length of the training batch")
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens sampled per completion")
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.embedded import materialise
    from looptool.serving.server import cpu_has_fast_bf16

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(materialise(log=lambda *a: None)), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    ids = torch.randint(0, 40000, (args.batch, args.tokens))
    modes = {"float32": contextlib.nullcontext, "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
    train: dict[str, list[float]] = {m: [] for m in modes}
    sample: dict[str, list[float]] = {m: [] for m in modes}
    for rep in range(args.reps + 1):  # the first round warms up and is not counted
        for mode, context in modes.items():
            model.train()
            started = time.perf_counter()
            with context():
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            model.zero_grad()
            spent = time.perf_counter() - started
            model.eval()
            started = time.perf_counter()
            with torch.no_grad(), context():
                model.generate(input_ids=ids[:, :300], attention_mask=torch.ones_like(ids[:, :300]), do_sample=True,
                               max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
            if rep:
                train[mode].append(spent)
                sample[mode].append(time.perf_counter() - started)
    print(f"CPU bf16 native: {cpu_has_fast_bf16()}; LoRA r16 on the embedded model; batch {args.batch}; "
          f"{args.reps} interleaved reps")
    for mode in modes:
        print(f"{mode:>14}: forward+backward ({args.tokens} tokens) {statistics.median(train[mode]):.2f} s, "
              f"generate ({args.new_tokens} new tokens) {statistics.median(sample[mode]):.2f} s")
    f32, b16 = "float32", "bf16 autocast"
    print(f"bf16/float32: forward+backward x{statistics.median(train[b16]) / statistics.median(train[f32]):.2f}, "
          f"generate x{statistics.median(sample[b16]) / statistics.median(sample[f32]):.2f}")


if __name__ == "__main__":
    main()
