"""Round assembly: what the next round trains on, by part, from probes, verdicts and expansions."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptool.config import DB_FILE, LoopConfig
from looptool.loop.assemble import (
    assemble_round,
    first_round_ids,
    first_round_size,
    record_assembly,
    round_share,
    static_round,
)
from looptool.schema import Label, Message, Probe, Round, Sample, ToolCall, Verdict
from looptool.store import Store


def _sample(i: int, **kw) -> Sample:
    return Sample(messages=[Message(role="user", content=f"request {i}")], tools=[], label=Label(text="ok"), **kw)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.create(tmp_path / DB_FILE)
    yield s
    s.close()


def test_next_round_takes_what_the_model_cannot_do_yet(store):
    seed = [_sample(i) for i in range(40)]
    expanded = [_sample(100 + i, origin="expanded", round_added=2, parent_id=seed[3].id) for i in range(3)]
    old_expansion = _sample(200, origin="expanded", round_added=1)
    heldout = _sample(300, split="heldout")
    store.upsert_samples([*seed, *expanded, old_expansion, heldout])
    round1 = [s.id for s in seed[:20]]
    store.upsert_round(Round(n=1, status="done", data_ids=round1))
    for i in range(10):  # probes of round 1: 0-3 failed, 4-9 correct with rising perplexity
        store.upsert_probe(Probe(sample_id=seed[i].id, round=1, correct=i >= 4, ppl=1.0 + i,
                                 category="failed" if i < 4 else ("mastered" if i < 6 else "boundary")))
    for i, kind in enumerate(["LABEL_WRONG", "PRED_WRONG", "BOTH_OK", "BOTH_WRONG"]):
        store.upsert_verdict(Verdict(sample_id=seed[i].id, round=1, verdict=kind))
    store.set_sample_active(seed[3].id, False)  # BOTH_WRONG leaves training

    loop = LoopConfig(round_size=12, fresh_share=0.25)
    nxt = assemble_round(store, 1, loop)
    parts = nxt.parts
    assert nxt.round == 2
    assert parts["corrected"] == [seed[0].id] and parts["error"] == [seed[1].id] and parts["both_ok"] == [seed[2].id]
    assert sorted(parts["expanded"]) == sorted(s.id for s in expanded)  # not the older expansion
    assert len(parts["fresh_seed"]) == 3 and not set(parts["fresh_seed"]) & set(round1)  # 0.25 x 12, unused only
    # The boundary fills what is left (12 - 9 = 3), highest perplexity first: seeds 9, 8, 7.
    assert parts["boundary"] == [seed[9].id, seed[8].id, seed[7].id]
    assert heldout.id not in nxt.ids and seed[3].id not in nxt.ids and seed[4].id not in nxt.ids  # mastered: out
    assert len(nxt.ids) == 12 and nxt.composition()["expanded"] == 3
    assert assemble_round(store, 1, loop).ids == nxt.ids  # the same again

    stored = record_assembly(store, nxt)
    assert store.get_round(2).data_ids == nxt.ids and stored.metrics.composition["boundary"] == 3


def test_fresh_share_halves_each_round():
    assert [round_share(1000, 0.3, r) for r in (2, 3, 4)] == [300, 150, 75]
    assert round_share(10, 0.0, 2) == 0
    # The paper's numbers: 18,304 a round, fresh 5,632 -> 2,816 -> 1,408 (a share of 0.308).
    assert [round_share(18304, LoopConfig().fresh_share, r) for r in (2, 3, 4)] == [5638, 2819, 1409]


def test_round_one_is_a_share_of_the_seed_pool():
    assert LoopConfig().first_round_share == 0.65 and LoopConfig().fresh_share == 0.308
    assert first_round_size(28160, LoopConfig()) == 18304  # the paper's round 1
    assert first_round_size(10, LoopConfig()) == 7 and first_round_size(1, LoopConfig()) == 1
    assert first_round_size(0, LoopConfig()) == 0
    assert first_round_size(100, LoopConfig(round_size=12)) == 12 and first_round_size(5, LoopConfig(round_size=12)) == 5


def _probe_everything_correct(store: Store, round: int, ids: list[str]) -> None:
    for i, sample_id in enumerate(ids):
        store.upsert_probe(Probe(sample_id=sample_id, round=round, correct=True, ppl=1.0 + i, category="boundary"))


def test_three_rounds_have_round_ones_size_and_the_formulas_fresh_seed(store):
    """Round 1 = 0.65 of the pool; rounds 2-4 the same size with fresh seed 0.308 x size, halving;
    no seed is ever fresh twice."""
    seed = [_sample(i) for i in range(200)]
    store.upsert_samples(seed)
    loop = LoopConfig()
    first = first_round_ids(store, loop, seed=3)
    assert len(first) == 130 and len(set(first)) == 130
    assert first_round_ids(store, loop, seed=3) == first and first_round_ids(store, loop, seed=4) != first
    store.upsert_round(Round(n=1, status="done", data_ids=first))
    fresh_seen: set[str] = set(first)
    for r, fresh in ((1, 40), (2, 20), (3, 10)):  # round_share(130, 0.308, r + 1)
        data = store.get_round(r).data_ids
        _probe_everything_correct(store, r, data)
        nxt = assemble_round(store, r, loop, seed=3)
        assert len(nxt.parts["fresh_seed"]) == fresh == round_share(130, 0.308, r + 1)
        assert not set(nxt.parts["fresh_seed"]) & fresh_seen  # seeds are never reused as fresh data
        fresh_seen |= set(nxt.parts["fresh_seed"])
        assert len(nxt.ids) == 130  # every round has round 1's size (the boundary fills the rest)
        record_assembly(store, nxt)
        store.upsert_round(store.get_round(r + 1).model_copy(update={"status": "done"}))


def _overflowing_round(store: Store) -> tuple[list[Sample], list[Sample]]:
    """Round 1 of 10 with 4 error seeds (0-3), each with 4 expansions: more than a round of 10 holds."""
    seed = [_sample(i) for i in range(30)]
    parents = seed[:4]
    expanded = [_sample(100 + 10 * p + k, origin="expanded", round_added=2, parent_id=parents[p].id)
                for p in range(4) for k in range(4)]
    store.upsert_samples([*seed, *expanded])
    store.upsert_round(Round(n=1, status="done", data_ids=[s.id for s in seed[:10]]))
    for p in parents:
        store.upsert_verdict(Verdict(sample_id=p.id, round=1, verdict="PRED_WRONG"))
    return seed, parents


def test_an_overflowing_round_is_cut_to_its_size_keeping_every_seeds_expansions(store):
    seed, parents = _overflowing_round(store)
    nxt = assemble_round(store, 1, LoopConfig(fresh_share=0.2))
    # 4 seeds and 16 expansions share the 8 places fresh seed leaves in proportion: 2 and 6.
    assert nxt.composition() == {"fresh_seed": 2, "corrected": 0, "error": 2, "both_ok": 0, "expanded": 6,
                                 "boundary": 0}
    kept = [store.get_sample(i).parent_id for i in nxt.parts["expanded"]]
    assert set(kept) == {p.id for p in parents} and max(kept.count(p.id) for p in parents) == 2  # spread over seeds
    assert len(nxt.ids) == 10


def test_an_overflowing_round_keeps_the_boundary_share_for_boundary_samples(store):
    seed, _ = _overflowing_round(store)
    for i in range(4, 10):  # correct, perplexity rising: 4-6 mastered, 7-9 boundary
        store.upsert_probe(Probe(sample_id=seed[i].id, round=1, correct=True, ppl=1.0 + i,
                                 category="mastered" if i < 7 else "boundary"))
    # Size 10: fresh 2, boundary's share 0.3 x 10 = 3, so 4 seeds and 16 expansions share 5: 1 and 4.
    nxt = assemble_round(store, 1, LoopConfig(fresh_share=0.2, boundary_share=0.3))
    assert nxt.composition() == {"fresh_seed": 2, "corrected": 0, "error": 1, "both_ok": 0, "expanded": 4,
                                 "boundary": 3}
    assert nxt.parts["boundary"] == [seed[9].id, seed[8].id, seed[7].id] and len(nxt.ids) == 10
    # Fewer boundary samples than the share: the rest of the room goes to the error seeds again.
    few = assemble_round(store, 1, LoopConfig(fresh_share=0.2, boundary_share=0.5))
    assert few.composition() == nxt.composition() and len(few.ids) == 10
    # No share kept: the boundary gets only what is left, here nothing.
    assert assemble_round(store, 1, LoopConfig(fresh_share=0.2, boundary_share=0.0)).composition()["boundary"] == 0


def _round_with_errors(store: Store) -> tuple[list[Sample], list[Sample]]:
    seed = [_sample(i) for i in range(40)]
    expanded = [_sample(100 + i, origin="expanded", round_added=2, parent_id=seed[1].id) for i in range(2)]
    store.upsert_samples([*seed, *expanded])
    store.upsert_round(Round(n=1, status="done", data_ids=[s.id for s in seed[:20]]))
    for i in range(10):  # 0-1 failed; 2-9 correct, perplexity rising
        store.upsert_probe(Probe(sample_id=seed[i].id, round=1, correct=i >= 2, ppl=1.0 + i,
                                 category="failed" if i < 2 else ("mastered" if i < 6 else "boundary")))
    store.upsert_verdict(Verdict(sample_id=seed[0].id, round=1, verdict="LABEL_WRONG"))
    store.upsert_verdict(Verdict(sample_id=seed[1].id, round=1, verdict="PRED_WRONG"))
    return seed, expanded


def test_the_ablation_arms_change_one_part_each(store):
    seed, expanded = _round_with_errors(store)
    loop = LoopConfig(round_size=12, fresh_share=0.25, expansions_per_error=3, boundary_share=0.0)  # no room kept
    base = assemble_round(store, 1, loop)
    assert base.parts["expanded"] == sorted(s.id for s in expanded)
    # fresh 3 + corrected 1 + error 1 + expanded 2 leave room for 5; only 4 are boundary (6-9).
    assert base.parts["boundary"] == [seed[9].id, seed[8].id, seed[7].id, seed[6].id] and len(base.ids) == 11

    no_edde = assemble_round(store, 1, loop, arm="no-edde")
    assert "expanded" not in no_edde.parts and no_edde.parts["error"] == base.parts["error"]

    repeat = assemble_round(store, 1, loop, arm="repeat-errors")
    assert "expanded" not in repeat.parts
    assert sorted(repeat.parts["repeated"]) == sorted([seed[0].id] * 3 + [seed[1].id] * 3)
    assert repeat.ids.count(seed[1].id) == 4  # once as an error sample, three times repeated
    assert len(repeat.ids) == 12

    random_hppl = assemble_round(store, 1, loop, arm="random-hppl")
    assert "boundary" not in random_hppl.parts
    correct = {seed[i].id for i in range(2, 10)}
    assert set(random_hppl.parts["random_correct"]) <= correct and len(random_hppl.parts["random_correct"]) == 5
    assert random_hppl.parts["random_correct"] == assemble_round(store, 1, loop, arm="random-hppl").parts["random_correct"]


def test_the_static_arm_trains_on_the_whole_seed_pool(store):
    seed = [_sample(i) for i in range(12)]
    store.upsert_samples([*seed, _sample(50, origin="expanded", round_added=2), _sample(60, split="heldout")])
    assert static_round(store, 2).ids == sorted(s.id for s in seed)
    assert static_round(store, 2).composition() == {"seed": 12}


@pytest.mark.parametrize("trial", range(12))
def test_a_round_never_holds_more_than_its_size(tmp_path, trial):
    """Whatever the probe, the judge and the expander left (here drawn at random), every arm's next
    round holds at most `round_size` samples, and its composition counts exactly its ids."""
    import random

    rng = random.Random(trial)
    with Store.create(tmp_path / DB_FILE) as store:
        seed = [_sample(i) for i in range(rng.randint(5, 60))]
        round1 = [s.id for s in seed[: rng.randint(1, len(seed))]]
        expanded = [_sample(1000 + i, origin="expanded", round_added=2, parent_id=rng.choice(round1))
                    for i in range(rng.randint(0, 40))]
        store.upsert_samples([*seed, *expanded])
        store.upsert_round(Round(n=1, status="done", data_ids=round1))
        for sample_id in round1:
            correct = rng.random() < 0.5
            store.upsert_probe(Probe(sample_id=sample_id, round=1, correct=correct, ppl=1 + rng.random(),
                                     category=rng.choice(["mastered", "boundary"]) if correct else "failed"))
            if not correct:
                store.upsert_verdict(Verdict(sample_id=sample_id, round=1,
                                             verdict=rng.choice(["LABEL_WRONG", "PRED_WRONG", "BOTH_OK"])))
        loop = LoopConfig(round_size=rng.randint(1, 30), fresh_share=rng.random(), boundary_share=rng.random(),
                          expansions_per_error=rng.randint(0, 6))
        for arm in ("loop", "no-edde", "repeat-errors", "random-hppl"):
            nxt = assemble_round(store, 1, loop, seed=trial, arm=arm)
            assert len(nxt.ids) <= loop.round_size, (arm, nxt.composition(), loop)
            assert sum(nxt.composition().values()) == len(nxt.ids), arm


def _call_sample(i: int, **kw) -> Sample:
    return Sample(messages=[Message(role="user", content=f"call {i}")], tools=[],
                  label=Label(calls=[ToolCall(name="f", arguments={"x": i})]), **kw)


def _no_calls(store: Store, ids: list[str]) -> int:
    return sum(not store.get_sample(i).label.calls for i in ids)


def test_keep_no_call_share_holds_the_seed_pools_share(store):
    # Seed pool: 10 labels with no call, 30 with calls (25%). Round 1's errors are all no-call
    # labels, each with two no-call expansions: left to the paper's assembly, they fill the round.
    asks = [_sample(i) for i in range(10)]
    calls = [_call_sample(i) for i in range(30)]
    expanded = [_sample(100 + i, origin="expanded", round_added=2, parent_id=asks[i % 6].id) for i in range(12)]
    store.upsert_samples([*asks, *calls, *expanded])
    store.upsert_round(Round(n=1, status="done", data_ids=[s.id for s in asks[:6] + calls[:6]]))
    for s in asks[:6]:
        store.upsert_probe(Probe(sample_id=s.id, round=1, correct=False, category="failed"))
        store.upsert_verdict(Verdict(sample_id=s.id, round=1, verdict="PRED_WRONG"))
    for i, s in enumerate(calls[:6]):
        store.upsert_probe(Probe(sample_id=s.id, round=1, correct=True, ppl=2.0 + i, category="boundary"))

    paper = assemble_round(store, 1, LoopConfig(round_size=12, fresh_share=0.25))
    kept = assemble_round(store, 1, LoopConfig(round_size=12, fresh_share=0.25, keep_no_call_share=True))
    assert len(paper.ids) == len(kept.ids) == 12
    assert _no_calls(store, paper.ids) >= 7  # errors and expansions tip the round towards "ask"
    assert _no_calls(store, kept.ids) == 3  # 25% of 12, as in the seed pool
    assert kept.parts["error"] and kept.parts["expanded"]  # some of the errors still come in
    assert assemble_round(store, 1, LoopConfig(round_size=12, fresh_share=0.25, keep_no_call_share=True)).ids == kept.ids

    # When one kind runs out, the other fills the round rather than leaving it short.
    short = assemble_round(store, 1, LoopConfig(round_size=12, fresh_share=0.0, boundary_share=0.0,
                                                keep_no_call_share=True))
    assert len(short.ids) == 12 and _no_calls(store, short.ids) > 3
