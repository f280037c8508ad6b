"""`looptool review` against a scripted judge: it shows the label and the prediction beside the
verdict and the judge's text; overrides take an id or a unique prefix, a batch is all or nothing
and a wrong one is an error in words; and a person's decision is kept for the label version it
was about: the next round does not ask the judge about that sample again and says the decision
was kept, while a sample whose label the decision changed is judged again. A verdict of the loop's
verification on a reply that is not language is decided by rule, with the reason stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptool.cli import app
from looptool.config import DB_FILE, load_config
from looptool.loop.verify import run_verify
from looptool.schema import Label, Probe, Sample
from looptool.store import Store
from tests.unit.test_judge import right_judge
from tests.unit.test_verify import BOTH, GENUINE, PLANTED, _call, _case, verify_ws  # noqa: F401 (fixture)

CASES = PLANTED + GENUINE + BOTH


def _review(runner, ws: Path, *args: str):
    return runner.invoke(app, ["review", "-w", str(ws), *args])


def _overrides(ws: Path, round: int = 1) -> dict[str, str | None]:
    with Store.open(ws / DB_FILE) as store:
        return {v.sample_id: v.human_override for v in store.verdicts(round)}


def _unique_prefix(sample_id: str, others: list[str]) -> str:
    for n in range(3, len(sample_id)):
        if not any(o != sample_id and o.startswith(sample_id[:n]) for o in others):
            return sample_id[:n]
    return sample_id


@pytest.fixture
def judged_ws(verify_ws, fake_openai) -> Path:
    """Round 1 verified by a right judge, the loop waiting at the review gate."""
    fake_openai.responder = right_judge
    config = load_config(verify_ws).model_copy(deep=True)
    config.loop.review = True
    assert run_verify(verify_ws, config, 1, log=lambda *_: None).paused
    return verify_ws


def test_the_listing_shows_label_prediction_verdict_and_the_judges_text(judged_ws, runner):
    result = _review(runner, judged_ws)
    assert result.exit_code == 0, result.output
    paris, probe = PLANTED[0]
    block = result.output.split(paris.id, 1)[1].split("\n\n", 1)[0]
    assert "LABEL_WRONG" in block and "judge (judge-m)" in block
    assert "label       [get_weather(city='Springfield')]" in block
    assert "prediction  [get_weather(city='Paris')]" in block
    assert "why         the user asked for Paris" in block
    assert result.output.startswith("round 1: 7 verdicts (BOTH_WRONG 1, LABEL_WRONG 4, PRED_WRONG 2)")


def test_an_override_takes_a_unique_prefix_of_the_id(judged_ws, runner):
    ids = [s.id for s, _ in CASES]
    paris = PLANTED[0][0].id
    result = _review(runner, judged_ws, "--override", f"{_unique_prefix(paris, ids)}=pred_wrong")
    assert result.exit_code == 0, result.output
    assert _overrides(judged_ws)[paris] == "PRED_WRONG"
    assert "LABEL_WRONG -> PRED_WRONG (override)" in result.output and "1 override recorded" in result.output
    cleared = _review(runner, judged_ws, "--override", f"{paris}=judge")
    assert cleared.exit_code == 0 and _overrides(judged_ws)[paris] is None


@pytest.mark.parametrize("bad, message", [
    ("s_=PRED_WRONG", "'s_' starts 7 sample ids with verdicts in round 1"),
    ("s_ffffffffffffffff=PRED_WRONG", "no verdict of round 1 is on a sample whose id starts with 's_ffffffffffffffff'"),
    ("{paris}=PRED_WRNG", "unknown verdict 'PRED_WRNG'; use LABEL_WRONG, PRED_WRONG, BOTH_OK, BOTH_WRONG, or judge"),
    ("{paris}", "write SAMPLE_ID=VERDICT"),
    ("{paris}=BOTH_OK", "is given twice, as PRED_WRONG and BOTH_OK"),
])
def test_a_batch_with_one_bad_override_changes_nothing(judged_ws, runner, bad, message):
    paris, rome = PLANTED[0][0].id, GENUINE[0][0].id
    before = _overrides(judged_ws)
    result = _review(runner, judged_ws, "--override", f"{rome}=BOTH_OK", "--override", f"{paris}=PRED_WRONG",
                     "--override", bad.format(paris=paris))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()  # one line, in words: no KeyError repr
    assert line.startswith("error: --override ") and message in line, line
    assert _overrides(judged_ws) == before  # the good overrides before it were not recorded either


def test_a_round_without_verdicts_is_an_error_in_words(judged_ws, runner):
    result = _review(runner, judged_ws, "--round", "3")
    assert result.exit_code == 1 and "round 3 has no verdicts; rounds with verdicts: 1" in result.stderr


def _fail_again(ws: Path, round: int) -> None:
    """Every sample of the cases fails its probe of `round` with the same prediction as in round 1."""
    with Store.open(ws / DB_FILE) as store:
        for _, probe in CASES:
            store.upsert_probe(probe.model_copy(update={"round": round}))


def _asked_about(fake_openai, sample: Sample) -> bool:
    question = sample.messages[-1].content
    return any(question in str(body) for _, body in fake_openai.requests)


def test_a_persons_decision_is_kept_for_its_label_version(judged_ws, fake_openai, runner):
    paris = PLANTED[0][0]  # the judge blames the label; a person says the prediction is wrong
    rome = GENUINE[0][0]  # the judge blames the prediction; a person takes the prediction as the label
    result = _review(runner, judged_ws, "--override", f"{paris.id}=PRED_WRONG", "--override", f"{rome.id}=LABEL_WRONG")
    assert result.exit_code == 0, result.output
    config = load_config(judged_ws).model_copy(deep=True)
    config.loop.review = True
    run_verify(judged_ws, config, 1, resume=True, log=lambda *_: None)  # applied: Rome's label is now v2
    with Store.open(judged_ws / DB_FILE) as store:
        assert (store.get_sample(paris.id).label_version, store.get_sample(rome.id).label_version) == (1, 2)

    _fail_again(judged_ws, 2)
    fake_openai.requests.clear()
    outcome = run_verify(judged_ws, load_config(judged_ws), 2, log=lambda *_: None)
    assert outcome.judged == 7
    assert not _asked_about(fake_openai, paris)  # the person's decision stands: no judge asked
    assert _asked_about(fake_openai, rome)  # a new label: the decision was about the old one
    with Store.open(judged_ws / DB_FILE) as store:
        verdicts = {v.sample_id: v for v in store.verdicts(2)}
        kept = verdicts[paris.id]
        assert (kept.verdict, kept.basis, kept.human_override, kept.label_version) == ("PRED_WRONG", "person", None, 1)
        assert "a person decided PRED_WRONG on this label (version 1) in round 1" in kept.rationale
        assert store.get_sample(paris.id).label_version == 1  # the judge would have replaced it
        assert verdicts[rome.id].basis == "judge" and verdicts[rome.id].label_version == 2
    listing = _review(runner, judged_ws, "--round", "2")
    block = listing.output.split(paris.id, 1)[1].split("\n\n", 1)[0]
    assert "PRED_WRONG  · a person's earlier decision, kept (no judge asked)" in block

    _fail_again(judged_ws, 3)  # and the round after: still kept, still from round 1
    fake_openai.requests.clear()
    run_verify(judged_ws, load_config(judged_ws), 3, log=lambda *_: None)
    assert not _asked_about(fake_openai, paris)
    with Store.open(judged_ws / DB_FILE) as store:
        assert next(v for v in store.verdicts(3) if v.sample_id == paris.id).basis == "person"


# -- replies that are not language -----------------------------------------------------------------------

JUNK = "f0-o3S7JQW-zZJL8EzbNqZJ-"


def _junk_cases() -> tuple[tuple[Sample, Probe], tuple[Sample, Probe]]:
    """A sample whose label is a junk reply (the prediction a call), and one whose prediction is."""
    junk_label, probe = _case("Nice", "Nice", "Nice")
    junk_label = junk_label.model_copy(update={"label": Label(text=JUNK)})  # (the id does not hash the label)
    sample, _ = _case("Bern", "Bern", "Bern")
    junk_prediction = Probe(sample_id=sample.id, round=1, correct=False, category="failed", raw=JUNK)
    return (junk_label, probe), (sample, junk_prediction)


def test_replies_that_are_not_language_are_decided_by_rule(verify_ws, fake_openai, runner):
    (bad_label, p1), (bern, p2) = _junk_cases()
    with Store.open(verify_ws / DB_FILE) as store:
        for sample, probe in ((bad_label, p1), (bern, p2)):
            store.upsert_sample(sample)
            store.upsert_probe(probe)
    fake_openai.responder = right_judge
    config = load_config(verify_ws).model_copy(deep=True)
    config.loop.review = True
    assert run_verify(verify_ws, config, 1, log=lambda *_: None).paused
    assert not _asked_about(fake_openai, bad_label) and not _asked_about(fake_openai, bern)
    with Store.open(verify_ws / DB_FILE) as store:
        verdicts = {v.sample_id: v for v in store.verdicts(1)}
    assert (verdicts[bad_label.id].verdict, verdicts[bad_label.id].basis) == ("BOTH_WRONG", "rule")
    assert "the label is a reply that is not language" in verdicts[bad_label.id].rationale
    assert (verdicts[bern.id].verdict, verdicts[bern.id].basis) == ("PRED_WRONG", "rule")
    assert "the prediction is a reply that is not language" in verdicts[bern.id].rationale
    assert "code-like" in verdicts[bern.id].rationale  # the reason is stored with the verdict

    # A person who takes the junk prediction as the label anyway is not followed, and told why.
    assert _review(runner, verify_ws, "--override", f"{bern.id}=LABEL_WRONG").exit_code == 0
    run_verify(verify_ws, config, 1, resume=True, log=lambda *_: None)
    with Store.open(verify_ws / DB_FILE) as store:
        assert store.get_sample(bern.id).label == _call("Bern") and store.get_sample(bern.id).label_version == 1
        assert store.get_sample(bad_label.id).active is False
        warnings = [e["message"] for e in store.events() if e["level"] == "warning"]
    assert any(bern.id in w and "LABEL_WRONG not applied" in w and "not language" in w for w in warnings)
