"""Round assembly: what the next round trains on, by part, from probes, verdicts and expansions."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptool.config import DB_FILE, LoopConfig
from looptool.schema import Label, Message, Probe, Round, Sample, Verdict
from looptool.store import Store
from looptool.training.assemble import assemble_round, record_assembly, round_share


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
    assert store.get_round(2).data_ids == nxt.ids and stored.metrics["composition"]["boundary"] == 3


def test_fresh_share_halves_each_round():
    assert [round_share(1000, 0.3, r) for r in (2, 3, 4)] == [300, 150, 75]
    assert round_share(10, 0.0, 2) == 0
