"""Tool synthesis speed with the embedded model, measured side by side in one run.

Starts (or reuses) a managed server in a temporary workspace, then synthesises
  1. N tools at concurrency C (the acceptance run of `looptool tools synth --n 60`), and
  2. a few tools one request at a time, into a second store, to show what batching buys;
then prints times, attempts, rejections, and tools/minute for both with their ratio.

Usage: python benchmarks/bench_tools_synth.py [--n 60] [--concurrency 16] [--sequential-n 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from looptool.config import WorkspaceConfig
from looptool.serving.client import resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.store import Store
from looptool.tools_sim.synth import synthesise


def run(endpoint, db: Path, n: int, concurrency: int, seed: int) -> tuple[float, object]:
    with Store.create(db) as store:
        started = time.perf_counter()
        report = synthesise(store, endpoint, n, seed=seed, concurrency=concurrency)
        return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential-n", type=int, default=8)
    args = parser.parse_args()
    config = WorkspaceConfig()
    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        ws = Path(tmp)
        endpoint = resolve_endpoint(config, "generator", ws, log=lambda *_: None)
        try:
            t_conc, conc = run(endpoint, ws / "concurrent.db", args.n, args.concurrency, seed=0)
            t_seq, seq = run(endpoint, ws / "sequential.db", args.sequential_n, 1, seed=1)
        finally:
            ServerManager(ws, config.serving).stop_all()
    for label, seconds, report in ((f"concurrency {args.concurrency}", t_conc, conc), ("concurrency 1", t_seq, seq)):
        print(
            f"{label:>15}: {report.stored} tools in {seconds:.1f} s ({60 * report.stored / seconds:.1f} tools/min), "
            f"{report.attempts} attempts, {report.rejected_total} rejected {dict(report.rejected)}"
        )
    ratio = (conc.stored / t_conc) / (seq.stored / t_seq)
    print(f"tools/min ratio concurrency {args.concurrency} vs 1: {ratio:.2f}")


if __name__ == "__main__":
    main()
