"""Label verification of a round (graphs/verify.py) against a scripted judge: planted wrong labels
become corrected samples with a new label version and their old label in the history; the review
gate pauses until resumed and a person's override wins; a killed or repeated run neither re-asks
nor re-applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptool.config import DB_FILE, EndpointModel, load_config, save_config
from looptool.graphs.verify import correction_reason, run_verify
from looptool.schema import Label, Message, Probe, Sample, ToolCall, ToolSpec
from looptool.serving.client import ServingError
from looptool.store import Store
from looptool.training.templates import system_message
from tests.unit.test_judge import right_judge

TOOL = ToolSpec(name="get_weather", description="Weather of a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _call(city: str) -> Label:
    return Label(calls=[ToolCall(name="get_weather", arguments={"city": city})])


def _case(asked: str, label_city: str, predicted_city: str) -> tuple[Sample, Probe]:
    sample = Sample(messages=[system_message([TOOL]), Message(role="user", content=f"Weather in {asked}?")],
                    tools=[TOOL], label=_call(label_city))
    probe = Probe(sample_id=sample.id, round=1, correct=False, category="failed", raw="x",
                  prediction=_call(predicted_city).calls)
    return sample, probe


PLANTED = [_case(c, "Springfield", c) for c in ("Paris", "Oslo", "Lima", "Quito")]  # the label is wrong
GENUINE = [_case(c, c, "Springfield") for c in ("Rome", "Cairo")]  # the prediction is wrong
BOTH = [_case("Perth", "Springfield", "Shelbyville")]  # both wrong


@pytest.fixture
def verify_ws(workspace: Path, fake_openai) -> Path:
    config = load_config(workspace).model_copy(deep=True)
    config.judge = EndpointModel(kind="endpoint", base_url=fake_openai.endpoint.base_url, model="judge-m")
    config.serving.max_retries = 0
    save_config(workspace, config)
    with Store.open(workspace / DB_FILE) as store:
        for sample, probe in PLANTED + GENUINE + BOTH:
            store.upsert_sample(sample)
            store.upsert_probe(probe)
    return workspace


def _labels(ws: Path) -> dict[str, Sample]:
    with Store.open(ws / DB_FILE) as store:
        return {s.messages[-1].content: s for s in store.iter_samples()}


def test_planted_wrong_labels_are_corrected_and_the_old_label_kept(verify_ws, fake_openai):
    fake_openai.responder = right_judge
    outcome = run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None)
    assert not outcome.paused and outcome.judged == 7
    assert outcome.applied == {"LABEL_WRONG": 4, "PRED_WRONG": 2, "BOTH_WRONG": 1}
    samples = _labels(verify_ws)
    with Store.open(verify_ws / DB_FILE) as store:
        for sample, probe in PLANTED:
            now = samples[sample.messages[-1].content]
            assert now.label == Label(calls=probe.prediction) and now.label_version == 2
            (old,) = store.label_history(sample.id)
            assert old["label"] == sample.label and old["label_version"] == 1
            assert old["reason"] == correction_reason(1)
        for sample, _ in GENUINE:
            assert samples[sample.messages[-1].content].label == sample.label
            assert store.label_history(sample.id) == []
        assert samples["Weather in Perth?"].active is False
        verdicts = {v.sample_id: v for v in store.verdicts(1)}
    assert all(v.judge_model == "judge-m" and v.rationale for v in verdicts.values())

    asked = len(fake_openai.requests)
    again = run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None)
    assert again.judged == 0 and len(fake_openai.requests) == asked  # nothing asked twice
    assert all(s.label_version == (2 if s.id in {p.sample_id for _, p in PLANTED} else 1)
               for s in _labels(verify_ws).values())  # nothing applied twice


def test_review_pauses_until_resumed_and_an_override_wins(verify_ws, fake_openai):
    fake_openai.responder = right_judge
    config = load_config(verify_ws).model_copy(deep=True)
    config.loop.review = True
    outcome = run_verify(verify_ws, config, 1, log=lambda *_: None)
    assert outcome.paused and all(s.label_version == 1 for s in _labels(verify_ws).values())
    assert run_verify(verify_ws, config, 1, log=lambda *_: None).paused  # still waiting: not resumed
    overruled, _ = PLANTED[0]
    with Store.open(verify_ws / DB_FILE) as store:
        store.set_human_override(overruled.id, 1, "PRED_WRONG")
    done = run_verify(verify_ws, config, 1, resume=True, log=lambda *_: None)
    assert not done.paused and done.applied == {"LABEL_WRONG": 3, "PRED_WRONG": 3, "BOTH_WRONG": 1}
    samples = _labels(verify_ws)
    assert samples[overruled.messages[-1].content].label_version == 1
    assert sum(s.label_version == 2 for s in samples.values()) == 3


def test_a_killed_judge_run_asks_only_what_is_missing(verify_ws, fake_openai):
    config = load_config(verify_ws).model_copy(deep=True)
    config.loop.concurrency = 1
    count = {"n": 0}

    def flaky(path, body):
        count["n"] += 1
        return (503, {"error": {"message": "gone"}}) if count["n"] > 3 else right_judge(path, body)

    fake_openai.responder = flaky
    with pytest.raises(ServingError):
        run_verify(verify_ws, config, 1, log=lambda *_: None)
    with Store.open(verify_ws / DB_FILE) as store:
        kept = len(store.verdicts(1))
    assert kept == 3 and all(s.label_version == 1 for s in _labels(verify_ws).values())
    fake_openai.requests.clear()
    fake_openai.responder = right_judge
    outcome = run_verify(verify_ws, config, 1, log=lambda *_: None)
    assert len(fake_openai.requests) == 7 - kept
    assert outcome.applied == {"LABEL_WRONG": 4, "PRED_WRONG": 2, "BOTH_WRONG": 1}


def test_a_judge_without_a_valid_verdict_keeps_the_label_and_the_round_goes_on(verify_ws, fake_openai):
    from tests.fakes import chat_reply

    def judge(path, body):  # valid for every sample but Oslo's
        if "Oslo" in str(body):
            return 200, chat_reply('{"analysis": "' + "x" * 20 + '"')  # cut off, as at max_tokens
        return right_judge(path, body)

    fake_openai.responder = judge
    lines: list[str] = []
    outcome = run_verify(verify_ws, load_config(verify_ws), 1, log=lines.append)
    assert outcome.judged == 7 and outcome.applied == {"LABEL_WRONG": 3, "PRED_WRONG": 3, "BOTH_WRONG": 1}
    oslo = _labels(verify_ws)["Weather in Oslo?"]
    assert oslo.label == _call("Springfield") and oslo.label_version == 1  # not corrected without a verdict
    with Store.open(verify_ws / DB_FILE) as store:
        verdict = next(v for v in store.verdicts(1) if v.sample_id == oslo.id)
        warnings = [e["message"] for e in store.events() if e["level"] == "warning"]
    assert verdict.verdict == "PRED_WRONG" and "no valid verdict" in verdict.rationale
    assert any(oslo.id in w for w in warnings) and any(oslo.id in line for line in lines)
