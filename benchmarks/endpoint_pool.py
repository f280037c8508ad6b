"""Requests/s of one role over a pool of two vLLM CPU servers vs one of them alone, side by side.

Starts two servers of the embedded model, each pinned to a CPU core of its own where the machine
has two (the CPU affinity the server's processes inherit, and VLLM_CPU_OMP_THREADS_BIND), then
alternates rounds: N chat requests with `--concurrency` in flight, sent through LoopTool's client
to an endpoint whose base_urls are both servers, and the same N requests to the first server
alone. Greedy answers to the same prompts: both modes do the same work. Prints requests/s of
each round, how the pool split its requests (from each server's vLLM metrics), and the median
ratio pool / one server.

Usage: python benchmarks/endpoint_pool.py [--requests 24] [--concurrency 8] [--max-tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from looptool.config import EMBEDDED_MODEL, ManagedModel, ServingConfig
from looptool.embedded import materialise
from looptool.serving.client import Endpoint, acomplete
from looptool.serving.server import ServerInfo, ServerManager

PROMPTS = [
    "Write a short note about the weather in {}.",
    "List three facts about the city of {}.",
    "Describe a train journey to {} in a few sentences.",
    "Suggest a weekend plan for a visitor to {}.",
]
CITIES = ["Paris", "Lima", "Oslo", "Kyoto", "Accra", "Quito", "Perth", "Riga"]


def finished_requests(info: ServerInfo) -> int:
    """Requests the server has finished (vLLM's request_success counter, over every finish reason)."""
    text = httpx.get(f"{info.root_url}/metrics", timeout=30).text
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("vllm:request_success_total")))


def start_on_core(manager: ServerManager, core: int | None) -> ServerInfo:
    """Start a server whose processes run on `core` only (None: wherever the OS puts them)."""
    if core is None:
        return manager.start(ManagedModel(), log=lambda *_: None)
    allowed = os.sched_getaffinity(0)
    bind = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    os.sched_setaffinity(0, {core})  # inherited by the server and the engine processes it forks
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
    try:
        return manager.start(ManagedModel(), log=lambda *_: None)
    finally:
        os.sched_setaffinity(0, allowed)
        if bind is None:
            os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        else:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind


def requests_per_second(endpoint: Endpoint, n: int, concurrency: int, max_tokens: int) -> float:
    async def run() -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            prompt = PROMPTS[i % len(PROMPTS)].format(CITIES[i % len(CITIES)])
            async with limit:
                await acomplete(endpoint, [{"role": "user", "content": prompt}], max_tokens=max_tokens)

        await asyncio.gather(*(one(i) for i in range(n)))

    started = time.perf_counter()
    asyncio.run(run())
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    pinned = len(cores) >= 2
    materialise(log=lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="looptool-bench-pool-") as tmp:
        managers = [ServerManager(Path(tmp) / name, ServingConfig()) for name in ("a", "b")]
        infos: list[ServerInfo] = []
        try:
            for manager, core in zip(managers, cores[:2] if pinned else [None, None], strict=True):
                infos.append(start_on_core(manager, core))
            a, b = infos
            print(f"two servers of {EMBEDDED_MODEL}: " + (f"pinned to cores {cores[0]} and {cores[1]}" if pinned else
                  f"sharing the machine's {len(cores)} core(s), not pinned"))
            common = dict(timeout_s=600.0, max_retries=0, supports_seed=False)
            one = Endpoint(a.base_url, EMBEDDED_MODEL, **common)
            pool = Endpoint(a.base_url, EMBEDDED_MODEL, replicas=(b.base_url,), **common)
            for endpoint in (one, Endpoint(b.base_url, EMBEDDED_MODEL, **common)):  # warm-up
                requests_per_second(endpoint, 2, 2, 8)
            single_rates, pool_rates, splits = [], [], []
            for _ in range(args.rounds):
                single_rates.append(requests_per_second(one, args.requests, args.concurrency, args.max_tokens))
                before = (finished_requests(a), finished_requests(b))
                pool_rates.append(requests_per_second(pool, args.requests, args.concurrency, args.max_tokens))
                splits.append((finished_requests(a) - before[0], finished_requests(b) - before[1]))
            ratios = [p / s for p, s in zip(pool_rates, single_rates, strict=True)]
            print(
                f"{args.requests} chat requests x {args.max_tokens} tokens, {args.concurrency} in flight, "
                f"{args.rounds} alternating rounds:\n"
                f"  one server  requests/s: {', '.join(f'{v:.2f}' for v in single_rates)}\n"
                f"  pool of two requests/s: {', '.join(f'{v:.2f}' for v in pool_rates)} "
                f"(requests per server: {', '.join(f'{x}+{y}' for x, y in splits)})\n"
                f"  ratio pool/one: median {statistics.median(ratios):.2f} "
                f"(per round {', '.join(f'{r:.2f}' for r in ratios)})"
            )
        finally:
            for manager, info in zip(managers, infos, strict=False):
                manager.stop(info)


if __name__ == "__main__":
    sys.exit(main())
