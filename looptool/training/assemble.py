"""Round assembly: the next round's data, chosen by what the current model cannot yet do.

Round r+1 = corrected samples (the judge fixed their label) + error samples (the policy was
wrong) + samples both answers got right (BOTH_OK) + the round's kept expansions + a fresh
subsample of seed samples no round has used (`[loop] fresh_share` of the round size in round 2,
halving every round after) + boundary samples (correct, high perplexity), highest perplexity
first, filling what is left of `[loop] round_size`. Mastered samples and samples both answers got
wrong are left out. Everything but the boundary fill is kept even when it overflows the round
size: those are the samples the round is for.

The fresh subsample is drawn by a seeded shuffle, so assembling a round again gives the same ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from looptool.config import LoopConfig
from looptool.schema import Round
from looptool.store import Store


@dataclass
class Assembly:
    round: int  # the round this data is for
    parts: dict[str, list[str]] = field(default_factory=dict)  # part -> sample ids, in order

    @property
    def ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for ids in self.parts.values():
            seen.update(dict.fromkeys(ids))
        return list(seen)

    def composition(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.parts.items()}


def previous_data(store: Store, upto: int) -> set[str]:
    """Every sample id that some round up to `upto` trained on."""
    used: set[str] = set()
    for r in store.rounds():
        if r.n <= upto:
            used.update(r.data_ids)
    return used


def assemble_round(store: Store, round: int, loop: LoopConfig, *, seed: int = 0) -> Assembly:
    """The data of round `round + 1` from round `round`'s probes, verdicts and expansions."""
    nxt = Assembly(round + 1)
    active = {s.id: s for s in store.iter_samples(active=True, split="train")}
    this = store.get_round(round)
    size = loop.round_size or (len(this.data_ids) if this and this.data_ids else len(active))
    kinds: dict[str, list[str]] = {"LABEL_WRONG": [], "PRED_WRONG": [], "BOTH_OK": []}
    for v in store.verdicts(round):
        kind = v.human_override or v.verdict
        if kind in kinds and v.sample_id in active:
            kinds[kind].append(v.sample_id)
    nxt.parts["corrected"] = kinds["LABEL_WRONG"]
    nxt.parts["error"] = kinds["PRED_WRONG"]
    nxt.parts["both_ok"] = kinds["BOTH_OK"]
    nxt.parts["expanded"] = sorted(s.id for s in active.values()
                                   if s.origin == "expanded" and s.round_added == round + 1)
    used = previous_data(store, round)
    unused = sorted(i for i, s in active.items() if s.origin == "seed" and i not in used)
    random.Random(f"fresh:{seed}:{round + 1}").shuffle(unused)
    fresh_n = round_share(size, loop.fresh_share, round + 1)
    nxt.parts["fresh_seed"] = unused[:fresh_n]
    taken = set(nxt.ids)
    boundary = sorted((p for p in store.probes(round, "boundary") if p.sample_id in active and p.sample_id not in taken),
                      key=lambda p: -(p.ppl or 0.0))
    nxt.parts["boundary"] = [p.sample_id for p in boundary[: max(0, size - len(taken))]]
    return nxt


def round_share(size: int, share: float, round: int) -> int:
    """Fresh seed samples in `round` (2, 3, ...): share x size in round 2, halving each round after."""
    return int(size * share * 0.5 ** max(0, round - 2) + 0.5)


def record_assembly(store: Store, assembly: Assembly) -> Round:
    """Store the assembled ids as the round's data (the round is created pending if new)."""
    existing = store.get_round(assembly.round) or Round(n=assembly.round)
    metrics = {**existing.metrics, "composition": assembly.composition()}
    updated = existing.model_copy(update={"data_ids": assembly.ids, "metrics": metrics})
    store.upsert_round(updated)
    return updated
