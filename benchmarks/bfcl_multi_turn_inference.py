"""BFCL-v3 multi-turn inference: entries/s with many entries in flight vs one at a time, side by side.

Starts the embedded model's vLLM server (context 8192, since multi-turn prompts are 2-4.5k tokens;
prefix caching off, so the second mode does not reuse the first one's identical conversations),
then asks the same entries twice through the evaluation's own path (`bfcl_suite.ask_multi_turn`:
prompts rendered by the policy's renderer, calls run on BFCL's backends between steps): once with
`--concurrency` entries in flight, once one entry at a time. Each entry's steps are sequential in
both modes. Prints entries/s and requests/s of each and their ratio.

Usage: python benchmarks/bfcl_multi_turn_inference.py [--entries 16] [--concurrency 16] [--max-tokens 32]
       [--category multi_turn_base]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from looptool.config import ManagedModel, ServingConfig
from looptool.embedded import materialise
from looptool.eval.bfcl_multi_turn_data import MultiTurnEntry, load_multi_turn_category
from looptool.eval.bfcl_suite import ask_multi_turn
from looptool.eval.runner import Asker
from looptool.policy.prompt import PromptRenderer, load_renderer
from looptool.serving.client import Endpoint, RequestRejected
from looptool.serving.server import ServerManager


async def ask_all(entries: list[MultiTurnEntry], ask: Asker, renderer: PromptRenderer,
                  concurrency: int) -> tuple[float, int, int]:
    """Seconds to ask every entry, requests sent, entries the server refused."""
    gate = asyncio.Semaphore(concurrency)
    requests, refused = [0], [0]

    async def one(entry: MultiTurnEntry) -> None:
        async with gate:
            try:
                answer = await ask_multi_turn(entry, ask, renderer)
                requests[0] += sum(len(turn) for turn in json.loads(answer.content))  # one request a step
            except RequestRejected:
                refused[0] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(e) for e in entries))
    return time.perf_counter() - started, requests[0], refused[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--category", default="multi_turn_base")
    args = parser.parse_args()

    entries = load_multi_turn_category(args.category)[: args.entries]
    spec = ManagedModel(max_model_len=8192, extra_args=["--no-enable-prefix-caching"])
    materialise(log=lambda *_: None)
    renderer = load_renderer(spec.model)
    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        manager = ServerManager(Path(tmp) / "ws", ServingConfig(cpu_kvcache_gib=2))
        info = manager.start(spec, log=lambda *_: None)
        try:
            # No retries and a long timeout: with many 3-4k-token prefills in flight on a CPU one request can
            # wait past the default 300 s, and a retry would repeat work the server is still doing.
            endpoint = Endpoint(info.base_url, spec.model, supports_seed=False, timeout_s=3600.0, max_retries=0)
            ask = Asker(endpoint, spec.model, max_tokens=args.max_tokens, temperature=0.0)
            asyncio.run(ask([{"role": "user", "content": "Hello"}]))  # warm-up
            results = {}
            for label, concurrency in ((f"{args.concurrency} in flight", args.concurrency), ("1 in flight", 1)):
                results[label] = asyncio.run(ask_all(entries, ask, renderer, concurrency))
                print(f"  ({label} done after {results[label][0]:.1f} s)", flush=True)  # a long run's first half
        finally:
            manager.stop(info)
    print(f"{len(entries)} {args.category} entries, max_tokens {args.max_tokens}, prefix caching off:")
    for label, (seconds, requests, refused) in results.items():
        print(f"  {label:>14}: {seconds:7.1f} s  {len(entries) / seconds:.3f} entries/s  "
              f"{requests / seconds:.2f} requests/s  ({requests} requests, {refused} entries refused)")
    (many_s, _, _), (one_s, _, _) = results.values()
    print(f"  ratio entries/s {args.concurrency} in flight / 1 in flight: {one_s / many_s:.2f}")


if __name__ == "__main__":
    sys.exit(main())
