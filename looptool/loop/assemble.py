"""Round assembly: each round's data, chosen by what the current model cannot yet do.

Round 1 is a seeded subsample of the seed training samples: `[loop] first_round_share` of them
(the paper: 18,304 of 28,160), so that fresh seed data is left for later rounds; `[loop]
round_size` overrides the count. Every later round has round 1's size (the paper keeps 18,304 in
every round) and is filled, part by part, until that size is reached:

1. fresh seed -- seed samples no round has used, `[loop] fresh_share` of the size in round 2,
   halving every round after (the paper: 5,632 -> 2,816 -> 1,408 of 18,304); seeds are never
   reused;
2. corrected -- the judge said the label was wrong and the policy right (LABEL_WRONG);
3. error -- the policy was wrong (PRED_WRONG);
4. both_ok -- the judge accepted both answers (the prediction is now an accepted alternative);
5. expanded -- the round's kept expansions, one per error seed in turn, so that a cut leaves every
   seed some of its expansions;
6. boundary -- correct answers with high perplexity, highest first (HPPL). The parts before it
   leave it `[loop] boundary_share` of the size (or as many as the probe found, if fewer): in the
   paper it fills whatever room is left, which was 20-23% of every round, while in a small round
   the error seeds and their expansions alone would fill it all.

Mastered samples and samples both answers got wrong are left out. A round never holds more than
the size, as in the paper (18,304 samples in every round): the data of a round is what the model
cannot do yet, chosen within a budget, and a round that grew with its errors would also spend more
GRPO steps (`[train] epochs`) than the round before. It holds fewer when the parts run out. Should
the parts overflow the size, the later ones are cut (a part that is cut keeps a seeded choice of
its samples), except that the error seeds (corrected and error) and their expansions share the
room they have (what fresh seed and the boundary's share leave) in proportion to their counts, so
that a small round keeps some of each rather than only the seeds.

The ablation arms (arms.py) change one part: `random-hppl` fills the last part (with the same room
kept for it) with a seeded random choice of the round's correct samples instead of the
highest-perplexity ones; `no-edde` has no expansions; `repeat-errors` repeats each error seed
(corrected and error) `expansions_per_error` times instead of expanding it -- the only part whose
ids may repeat in a round's data.

`[loop] keep_no_call_share` (a departure from the paper, off by default) fills every part by label
kind instead: no more labels with no call than the seed pool's share of the round, no more with
calls than the rest; what one kind leaves unfilled, the other fills, in part order.

Every choice is a seeded shuffle, so assembling a round again gives the same ids.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from looptool.config import LoopConfig
from looptool.schema import Round, Sample
from looptool.store import Store
from looptool.training.dataset import seed_pool

REPEATED = "repeated"  # the part whose ids repeat (the repeat-errors arm)


@dataclass
class Assembly:
    round: int  # the round this data is for
    parts: dict[str, list[str]] = field(default_factory=dict)  # part -> sample ids, in order

    @property
    def ids(self) -> list[str]:
        """The round's data: every part's ids once, in part order, then the repeated ones."""
        seen: dict[str, None] = {}
        for name, ids in self.parts.items():
            if name != REPEATED:
                seen.update(dict.fromkeys(ids))
        return [*seen, *self.parts.get(REPEATED, [])]

    def composition(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.parts.items()}


def previous_data(store: Store, upto: int) -> set[str]:
    """Every sample id that some round up to `upto` trained on."""
    used: set[str] = set()
    for r in store.rounds():
        if r.n <= upto:
            used.update(r.data_ids)
    return used


def first_round_ids(store: Store, loop: LoopConfig, *, seed: int = 0) -> list[str]:
    """Round 1's data: a seeded subsample of the seed pool, `round_size` or `first_round_share` of it."""
    pool = seed_pool(store)
    random.Random(f"round-1:{seed}").shuffle(pool)
    return pool[: first_round_size(len(pool), loop)]


def first_round_size(pool: int, loop: LoopConfig) -> int:
    """How many seed samples round 1 takes from a pool of `pool` (at least one when there are any)."""
    if loop.round_size:
        return min(pool, loop.round_size)
    return min(pool, max(1, int(pool * loop.first_round_share + 0.5))) if pool else 0


def round_size(store: Store, loop: LoopConfig) -> int:
    """The size of every round: `round_size` when set, else round 1's."""
    if loop.round_size:
        return loop.round_size
    first = store.get_round(1)
    return len(first.data_ids) if first is not None else 0


def round_share(size: int, share: float, round: int) -> int:
    """Fresh seed samples in `round` (2, 3, ...): share x size in round 2, halving each round after."""
    return int(size * share * 0.5 ** max(0, round - 2) + 0.5)


def _shuffled(ids: Iterable[str], key: str) -> list[str]:
    out = sorted(ids)
    random.Random(key).shuffle(out)
    return out


def _by_parent_in_turn(samples: list[tuple[str, str]]) -> list[str]:
    """(parent, id) pairs as ids ordered one per parent in turn: the first expansion of every
    parent, then the second of every parent, ..."""
    by_parent: dict[str, list[str]] = {}
    for parent, sample_id in sorted(samples):
        by_parent.setdefault(parent, []).append(sample_id)
    out, depth = [], 0
    while any(len(ids) > depth for ids in by_parent.values()):
        out += [ids[depth] for ids in by_parent.values() if len(ids) > depth]
        depth += 1
    return out


def assemble_round(store: Store, round: int, loop: LoopConfig, *, seed: int = 0, arm: str = "loop") -> Assembly:
    """The data of round `round + 1` from round `round`'s probes, verdicts and expansions."""
    nxt = Assembly(round + 1)
    active = {s.id: s for s in store.iter_samples(active=True, split="train")}
    size = round_size(store, loop) or len(active)
    kinds: dict[str, list[str]] = {"LABEL_WRONG": [], "PRED_WRONG": [], "BOTH_OK": []}
    for v in store.verdicts(round):
        kind = v.effective
        if kind in kinds and v.sample_id in active:
            kinds[kind].append(v.sample_id)
    used = previous_data(store, round)
    unused = [i for i, s in active.items() if s.origin == "seed" and i not in used]
    key = f"{seed}:{round + 1}"
    candidates: dict[str, list[str]] = {
        "fresh_seed": _shuffled(unused, f"fresh:{key}")[: round_share(size, loop.fresh_share, round + 1)],
        "corrected": _shuffled(kinds["LABEL_WRONG"], f"corrected:{key}"),
        "error": _shuffled(kinds["PRED_WRONG"], f"error:{key}"),
        "both_ok": _shuffled(kinds["BOTH_OK"], f"both-ok:{key}"),
    }
    if arm == "repeat-errors":
        seeds = candidates["corrected"] + candidates["error"]
        candidates[REPEATED] = [i for _ in range(loop.expansions_per_error) for i in seeds]
    elif arm != "no-edde":
        candidates["expanded"] = _by_parent_in_turn(
            [(s.parent_id or "", s.id) for s in active.values() if s.origin == "expanded" and s.round_added == round + 1])
    if arm == "random-hppl":
        correct = [p.sample_id for p in store.probes(round) if p.correct and p.sample_id in active]
        candidates["random_correct"] = _shuffled(correct, f"random-correct:{key}")
    else:
        boundary = sorted((p for p in store.probes(round, "boundary") if p.sample_id in active),
                          key=lambda p: (-(p.ppl or 0.0), p.sample_id))
        candidates["boundary"] = [p.sample_id for p in boundary]
    last = "random_correct" if arm == "random-hppl" else "boundary"
    reserve = min(len(candidates[last]), int(size * loop.boundary_share + 0.5))
    quota = _error_quotas(candidates, size - reserve)
    budget = _kind_budget(store, active, size) if loop.keep_no_call_share else None
    taken: set[str] = set()
    passed: list[tuple[str, str]] = []  # (part, id) left out only because its label kind was full
    filled = 0
    for part, ids in candidates.items():
        fresh = ids if part == REPEATED else [i for i in dict.fromkeys(ids) if i not in taken]
        room = size - filled - (0 if part == last else reserve)
        wanted = max(0, min(room, quota.get(part, size)))
        if budget is None:
            chosen = fresh[:wanted]
        else:
            chosen = []
            for i in fresh:
                if len(chosen) == wanted:
                    break
                kind = _no_call(active[i])
                if budget[kind] > 0:
                    budget[kind] -= 1
                    chosen.append(i)
                else:
                    passed.append((part, i))
        nxt.parts[part] = chosen
        taken.update(chosen)
        filled += len(chosen)
    for part, i in passed:  # one kind ran out: the other fills the round, in part order
        if filled >= size:
            break
        if part == REPEATED or i not in taken:
            nxt.parts[part].append(i)
            taken.add(i)
            filled += 1
    return nxt


def _no_call(sample: Sample) -> bool:
    return not sample.label.calls


def _kind_budget(store: Store, active: dict[str, Sample], size: int) -> dict[bool, int]:
    """How many of a round of `size` may have a label with no call (True) and with calls (False):
    the seed pool's share (`[loop] keep_no_call_share`)."""
    pool = seed_pool(store)
    share = sum(_no_call(active[i]) for i in pool) / len(pool) if pool else 0.0
    no_call = int(size * share + 0.5)
    return {True: no_call, False: size - no_call}


SEED_PARTS = ("corrected", "error")
GROWN_PARTS = ("expanded", REPEATED)  # what an arm makes from the error seeds


def _error_quotas(candidates: dict[str, list[str]], size: int) -> dict[str, int]:
    """How many of the error seeds and of what was made from them fit when together they overflow
    the room the fresh seed leaves: a share of that room in proportion to their counts (the seeds'
    share rounded, the corrected ones first); no limit when they fit."""
    room = max(0, size - len(candidates["fresh_seed"]))
    seeds = sum(len(candidates[p]) for p in SEED_PARTS)
    grown = sum(len(candidates.get(p, [])) for p in GROWN_PARTS)
    if seeds + grown <= room:
        return {}
    keep_seeds = min(seeds, int(room * seeds / (seeds + grown) + 0.5))
    corrected = min(len(candidates["corrected"]), keep_seeds)
    return {"corrected": corrected, "error": keep_seeds - corrected,
            **{p: room - keep_seeds for p in GROWN_PARTS}}


def static_round(store: Store, round: int) -> Assembly:
    """The static arm's data for `round`: the whole seed pool, every round (the paper's "w/o
    iterations" baseline; its steps, not its data, are matched to the loop's)."""
    return Assembly(round, {"seed": seed_pool(store)})


def record_assembly(store: Store, assembly: Assembly) -> Round:
    """Store the assembled ids as the round's data (the round is created pending if new)."""
    existing = store.get_round(assembly.round) or Round(n=assembly.round)
    metrics = existing.metrics.updated(composition=assembly.composition())
    updated = existing.model_copy(update={"data_ids": assembly.ids, "metrics": metrics})
    store.upsert_round(updated)
    return updated
