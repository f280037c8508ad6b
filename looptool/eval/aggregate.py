"""BFCL-v3 summary numbers from per-category scores, computed the way the leaderboard does.

* simple_ast = unweighted mean(simple, java, javascript)
* non_live_ast = unweighted mean(simple_ast, multiple, parallel, parallel_multiple) (the leaderboard's
  "Non-Live AST Acc")
* non_live = unweighted mean(simple_ast, multiple, parallel, parallel_multiple, irrelevance)
* live = count-weighted mean over the six live categories
* multi_turn = unweighted mean of the four multi-turn categories
* overall = unweighted mean(non_live, live, multi_turn)

The leaderboard counts a missing category as 0; here a group is computed over the categories that
were run, and every group says which of its members are missing. `overall_as_leaderboard` is the
official formula with missing members counted as 0, for comparison with published rows; with all
17 categories scored the two overalls agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from looptool.eval.bfcl_data import ALL_CATEGORIES, MULTI_TURN_CATEGORIES

SIMPLE_AST = ("simple", "java", "javascript")
NON_LIVE_AST = ("simple_ast", "multiple", "parallel", "parallel_multiple")
NON_LIVE = (*NON_LIVE_AST, "irrelevance")
LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
        "live_relevance")
MULTI_TURN = MULTI_TURN_CATEGORIES
GROUPS = ("simple_ast", "non_live_ast", "non_live", "live", "multi_turn", "overall")


@dataclass(frozen=True)
class Group:
    accuracy: float | None  # None when no member was run
    missing: tuple[str, ...]  # members not run (sub-groups count as run when any of theirs was)


@dataclass
class BfclSummary:
    categories: dict[str, dict[str, Any]]  # category -> total, passed, accuracy, errors, size, partial
    groups: dict[str, Group] = field(default_factory=dict)
    overall_as_leaderboard: float = 0.0

    @property
    def partial(self) -> list[str]:
        """Categories scored on a subset of their entries (e.g. with --limit)."""
        return [c for c, s in self.categories.items() if s["partial"]]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(scores: dict[str, dict[str, Any]], sizes: dict[str, int]) -> BfclSummary:
    """`scores`: category -> {total, passed, accuracy, errors} as stored; `sizes`: entries per category."""
    order = {c: i for i, c in enumerate(ALL_CATEGORIES)}
    cats = {c: {**s, "size": sizes.get(c, s["total"]), "partial": s["total"] < sizes.get(c, s["total"])}
            for c, s in sorted(scores.items(), key=lambda kv: order.get(kv[0], len(order)))}
    groups = _groups(cats, missing_as_zero=False)
    official = _groups(cats, missing_as_zero=True)
    return BfclSummary(cats, groups, official["overall"].accuracy or 0.0)


def _groups(cats: dict[str, dict[str, Any]], *, missing_as_zero: bool) -> dict[str, Group]:
    acc: dict[str, float] = {c: s["accuracy"] for c, s in cats.items()}
    groups: dict[str, Group] = {}

    def record(name: str, accuracy: float | None, missing: tuple[str, ...]) -> None:
        groups[name] = Group(accuracy, missing)
        if accuracy is not None:
            acc[name] = accuracy

    def unweighted(name: str, members: tuple[str, ...]) -> None:
        values = [acc.get(m, 0.0) for m in members] if missing_as_zero else [acc[m] for m in members if m in acc]
        record(name, _mean(values), tuple(m for m in members if m not in acc))

    unweighted("simple_ast", SIMPLE_AST)
    unweighted("non_live_ast", NON_LIVE_AST)
    unweighted("non_live", NON_LIVE)
    live = [cats[c] for c in LIVE if c in cats]
    total = sum(s["total"] for s in live)
    record("live", sum(s["passed"] for s in live) / total if total else (0.0 if missing_as_zero else None),
           tuple(c for c in LIVE if c not in cats))
    unweighted("multi_turn", MULTI_TURN)
    unweighted("overall", ("non_live", "live", "multi_turn"))
    return groups
