"""Seed-dialogue throughput: verified dialogues per minute at concurrency 1 and 16, against the
same vLLM server, measured side by side in one run.

Starts (or reuses) a managed server with the embedded model in a temporary workspace, synthesises
a small tool set once, copies it into two fresh workspaces whose agent roles point at that one
server, and runs `looptool seed` (in process) in each:
  1. --sequential-n dialogues at concurrency 1,
  2. --n dialogues at --concurrency (16),
then prints dialogues, verified, time and verified/min for both, and their ratio (target >= 4).
Both runs use the same seed, so they start from the same dialogue plans and scenario mix.

Usage: python benchmarks/seed_throughput.py [--n 32] [--concurrency 16] [--sequential-n 8] [--tools 30]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from looptool.config import DB_FILE, EndpointModel, WorkspaceConfig, save_config
from looptool.seed.runner import run_seed
from looptool.serving.client import resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.store import Store
from looptool.tools_sim.synth import synthesise


def seed_workspace(root: Path, name: str, tools_db: Path, base_url: str, model: str) -> tuple[Path, WorkspaceConfig]:
    """A workspace holding a copy of the tools whose agent roles use the shared server."""
    ws = root / name
    ws.mkdir()
    shutil.copy(tools_db, ws / DB_FILE)
    shared = EndpointModel(base_url=base_url, model=model)
    config = WorkspaceConfig(name=name, generator=shared)
    config.seed.guidance = "grammar"  # what `auto` picks for the embedded model when it is managed
    save_config(ws, config)
    return ws, config


def timed_seed(ws: Path, config: WorkspaceConfig, n: int, concurrency: int) -> tuple[float, object]:
    started = time.perf_counter()
    report = run_seed(ws, config, n=n, concurrency=concurrency, seed=0, log=lambda *_: None)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential-n", type=int, default=8)
    parser.add_argument("--tools", type=int, default=30)
    args = parser.parse_args()
    base = WorkspaceConfig()
    with tempfile.TemporaryDirectory(prefix="looptool-bench-") as tmp:
        root = Path(tmp)
        endpoint = resolve_endpoint(base, "generator", root, log=lambda *_: None)
        try:
            tools_db = root / "tools.db"
            with Store.create(tools_db) as store:
                synthesise(store, endpoint, args.tools, seed=0, concurrency=16)
                n_tools = len(store.tool_records())
            seq_ws, seq_cfg = seed_workspace(root, "sequential", tools_db, endpoint.base_url, endpoint.model)
            conc_ws, conc_cfg = seed_workspace(root, "concurrent", tools_db, endpoint.base_url, endpoint.model)
            t_seq, seq = timed_seed(seq_ws, seq_cfg, args.sequential_n, 1)
            t_conc, conc = timed_seed(conc_ws, conc_cfg, args.n, args.concurrency)
        finally:
            ServerManager(root, base.serving).stop_all()
    print(f"tools: {n_tools}")
    for label, seconds, report in (("concurrency 1", t_seq, seq), (f"concurrency {args.concurrency}", t_conc, conc)):
        print(
            f"{label:>15}: {report.done + report.dropped} dialogues, {report.done} verified, {report.dropped} dropped "
            f"in {seconds:.1f} s -> {60 * report.done / seconds:.2f} verified/min"
        )
    ratio = (conc.done / t_conc) / (seq.done / t_seq)
    finished = ((conc.done + conc.dropped) / t_conc) / ((seq.done + seq.dropped) / t_seq)
    print(f"verified dialogues/min ratio concurrency {args.concurrency} vs 1: {ratio:.2f} (target >= 4)")
    # The same ratio over all finished dialogues, which does not move with the small runs' drop rates.
    print(f"finished dialogues/min ratio concurrency {args.concurrency} vs 1: {finished:.2f}")


if __name__ == "__main__":
    main()
