"""Probe throughput: samples/s of probing through vLLM (many requests in flight, as the loop
probes) vs a plain transformers `generate` loop (one sample at a time) on the same samples.

Both decode greedily with the same prompt (the policy renderer's, trimmed as training trims it),
the same completion limit, the answer's log-probs (for its perplexity), and the same adapter when
one is given; both are scored by the reward's rule. With an adapter, vLLM serves it each way that
`[serving] policy_adapter` offers (`--serving`): merged into a copy of the base weights, and
hot-loaded as LoRA. Printed side by side from one run, with how often each agrees with
transformers on correct / incorrect.

    .venv/bin/python benchmarks/probe_throughput.py [--workspace DIR] [--n 64] [--adapter DIR] [--serving merged,lora]

Samples: templated tool-call tasks (no model needed to make them). Starting a vLLM server (and
merging the adapter) is timed apart and not counted in its rate; so is loading the model into
transformers. Each vLLM arm runs alone: its server is stopped before the next arm starts.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from looptool.calls import label_matches, parse_calls
from looptool.concurrency import run_all
from looptool.config import load_config
from looptool.loop.probe import mean_perplexity, probe_sample
from looptool.policy.prompt import load_renderer
from looptool.seed.templated import templated_samples
from looptool.serving.server import ServerManager
from looptool.serving.target import resolve_target
from looptool.training.stage import base_model_dir


def probe_with_vllm(workspace: Path, samples, adapter: Path | None, max_tokens: int, concurrency: int,
                    serving: str):
    config = load_config(workspace)
    config.serving.policy_adapter = serving
    renderer = load_renderer(str(base_model_dir(config)), thinking=config.policy.thinking)
    t0 = time.monotonic()
    target = resolve_target(workspace, config, None, adapter=adapter, log=lambda *_: None)
    startup = time.monotonic() - t0
    gate = asyncio.Semaphore(concurrency)
    probes: dict[str, object] = {}

    async def one(sample):
        async with gate:
            probes[sample.id] = await probe_sample(sample, 1, renderer, target, max_tokens=max_tokens,
                                                   max_prompt_tokens=config.train.max_prompt_tokens,
                                                   perplexity_of="output")

    async def all_of():
        await run_all(one(s) for s in samples)

    t0 = time.monotonic()
    asyncio.run(all_of())
    return [probes[s.id] for s in samples], time.monotonic() - t0, startup


def probe_with_transformers(workspace: Path, samples, adapter: Path | None, max_tokens: int):
    import torch
    from transformers import AutoModelForCausalLM

    config = load_config(workspace)
    model_dir = base_model_dir(config)
    renderer = load_renderer(str(model_dir), thinking=config.policy.thinking)
    t0 = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    load = time.monotonic() - t0
    tok = renderer.tokenizer
    results = []
    t0 = time.monotonic()
    with torch.no_grad():
        for s in samples:
            history = renderer.fit(s.messages, s.tools, config.train.max_prompt_tokens) or s.messages
            ids = tok(renderer.render(history, s.tools), return_tensors="pt", add_special_tokens=False)
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, pad_token_id=tok.eos_token_id)
            new = out.sequences[0, ids["input_ids"].shape[1]:]
            logprobs = [torch.log_softmax(score[0], -1)[t].item() for score, t in zip(out.scores, new, strict=False)]
            text = tok.decode(new, skip_special_tokens=True)
            results.append((label_matches(parse_calls(text), s.label), mean_perplexity(logprobs)))
    return results, time.monotonic() - t0, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="a workspace (default: a new one in a temporary directory)")
    parser.add_argument("--n", type=int, default=64, help="samples to probe")
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter directory to probe with (default: the base)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serving", default="merged,lora",
                        help="with --adapter: how vLLM serves it, comma-separated arms (merged, lora)")
    args = parser.parse_args()
    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory()
        args.workspace = Path(tmp.name) / "ws"
        subprocess.run([sys.executable, "-m", "looptool.cli", "init", str(args.workspace)], check=True,
                       stdout=subprocess.DEVNULL)
    samples = templated_samples(args.n, seed=11, heldout_fraction=0.0)
    arms = args.serving.split(",") if args.adapter else ["lora"]  # without an adapter: the base model
    served = {}
    for arm in arms:
        try:
            served[arm] = probe_with_vllm(args.workspace, samples, args.adapter, args.max_tokens, args.concurrency, arm)
        finally:
            ServerManager(args.workspace, load_config(args.workspace).serving).stop_all()  # the cores, for the next arm
    hf, hf_s, load = probe_with_transformers(args.workspace, samples, args.adapter, args.max_tokens)
    n = len(samples)
    print(f"probe {n} templated samples, greedy, max {args.max_tokens} new tokens, answer log-probs, "
          f"adapter: {args.adapter or 'none (base)'}")
    for arm, (probes, vllm_s, startup) in served.items():
        agree = sum(p.correct == h[0] for p, h in zip(probes, hf, strict=True))
        how = f"adapter {arm}, " if args.adapter else ""
        print(f"vLLM, {how}{args.concurrency} in flight: {vllm_s:7.1f} s  {n / vllm_s:6.2f} samples/s  "
              f"(start {startup:.1f} s, not counted); correct {sum(p.correct for p in probes)}/{n}; "
              f"agrees with transformers on {agree}/{n}")
    print(f"transformers generate, one by one: {hf_s:7.1f} s  {n / hf_s:6.2f} samples/s  "
          f"(model load {load:.1f} s, not counted); correct {sum(h[0] for h in hf)}/{n}")
    ratios = ", ".join(f"{arm} {hf_s / vllm_s:.2f}" for arm, (_, vllm_s, _) in served.items())
    print(f"throughput ratio vLLM / transformers: {ratios}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
