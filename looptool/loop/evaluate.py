"""The evaluate stage: a round's adapter on the held-out samples and the benchmark subsets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from looptool.config import DB_FILE, WorkspaceConfig
from looptool.schema import EvalMetrics
from looptool.store import Store


def evaluate_round(workspace: Path, config: WorkspaceConfig, round: int, log: Callable[[str], None]) -> EvalMetrics:
    """The round's adapter on the held-out samples, the BFCL-v3 subset and (when configured) the
    ACEBench subset: accuracy by part."""
    from looptool.eval import acebench_suite, bfcl_suite
    from looptool.eval.heldout import run_heldout
    from looptool.serving.target import resolve_target

    target = resolve_target(workspace, config, round, log=log)
    out: dict[str, Any] = {}
    with Store.open(workspace / DB_FILE) as store:
        has_heldout = any(True for _ in store.iter_samples(split="heldout", active=True, page=1))
    if has_heldout:
        run_id, _ = run_heldout(workspace, config, target)
        with Store.open(workspace / DB_FILE) as store:
            scores = store.eval_scores(run_id)
        out["heldout"] = _accuracy(scores)
        out["heldout_run"] = run_id
    # An empty setting means no BFCL evaluation ("all" names all 17 categories, multi-turn included).
    categories = config.loop.bfcl_categories
    if categories:
        run_id, _ = bfcl_suite.run_bfcl(workspace, config, target, categories, config.loop.eval_bfcl_limit)
        with Store.open(workspace / DB_FILE) as store:
            scores = store.eval_scores(run_id)
        out["bfcl"] = {c: s["accuracy"] for c, s in scores.items()} | {"all": _accuracy(scores)}
        out["bfcl_run"] = run_id
    if config.loop.acebench_categories:
        run_id, _ = acebench_suite.run_acebench(workspace, config, target, config.loop.acebench_categories,
                                                config.loop.eval_acebench_limit)
        with Store.open(workspace / DB_FILE) as store:
            out["acebench"] = acebench_suite.figures(store.eval_results(run_id))
        out["acebench_run"] = run_id
    return EvalMetrics(**out)


def _accuracy(scores: dict[str, dict[str, Any]]) -> float | None:
    total = sum(s["total"] for s in scores.values())
    return sum(s["passed"] for s in scores.values()) / total if total else None
