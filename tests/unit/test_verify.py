"""Label verification of a round (loop/verify.py) against a scripted judge: planted wrong labels
become corrected samples with a new label version and their old label in the history; a BOTH_OK
prediction becomes an accepted answer the reward then scores 1; exact labels and the arm without
a judge get PRED_WRONG by rule, no judge asked; every judge call is traced; the review gate pauses
until resumed and a person's override wins; a killed or repeated run neither re-asks nor
re-applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from looptool.calls import label_matches, parse_calls
from looptool.config import DB_FILE, EndpointModel, load_config, save_config
from looptool.loop.verify import NO_JUDGE, alternative_reason, correction_reason, run_verify
from looptool.policy.prompt import label_text, load_renderer, system_message
from looptool.schema import Label, Message, Probe, Sample, ToolCall, ToolSpec
from looptool.serving.client import ServingError
from looptool.store import Store
from looptool.training.dataset import training_rows
from looptool.training.reward import ToolCallReward, binary_reward, partial_reward
from tests.fakes import chat_reply
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
    assert all(v.judge_model == "judge-m" and v.rationale and v.basis == "judge" for v in verdicts.values())
    with Store.open(verify_ws / DB_FILE) as store:
        calls = store.agent_calls(round=1)
    # One vote of one attempt per sample, each with the prompt the judge read and what it answered.
    assert sorted((c["subject"], c["call_key"]) for c in calls) == sorted((f"verdict:{i}:1", "v0.a0") for i in verdicts)
    for c in calls:
        assert c["agent"] == "judge" and c["status"] == "ok" and c["sample_id"] in verdicts
        assert "Answer 1:" in c["prompt"] and c["parsed"]["verdict"] in c["raw"]

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
    assert verdict.verdict == "PRED_WRONG" and verdict.basis == "no_answer" and "no valid verdict" in verdict.rationale
    assert any(oslo.id in w for w in warnings) and any(oslo.id in line for line in lines)


def test_a_both_ok_prediction_becomes_an_accepted_answer_the_reward_scores(verify_ws, fake_openai):
    oslo, probe = PLANTED[1]  # label Springfield, prediction Oslo

    def judge(path, body):
        if "Weather in Oslo?" in body["messages"][-1]["content"]:
            return 200, chat_reply(json.dumps({"analysis": "either will do", "verdict": "BOTH_OK"}))
        return right_judge(path, body)

    fake_openai.responder = judge
    outcome = run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None)
    assert outcome.applied == {"LABEL_WRONG": 3, "BOTH_OK": 1, "PRED_WRONG": 2, "BOTH_WRONG": 1}
    prediction = Label(calls=probe.prediction)
    with Store.open(verify_ws / DB_FILE) as store:
        now = store.get_sample(oslo.id)
        (old,) = store.label_history(oslo.id)
    assert now.label.primary() == oslo.label and now.label.alternatives == [prediction] and now.label_version == 2
    assert old["label"] == oslo.label and old["reason"] == alternative_reason(1)

    answer, own = label_text(prediction), label_text(oslo.label)
    for completion in (answer, own):  # the accepted prediction and the label's own answer both pass
        assert binary_reward(completion, now.label) == partial_reward(completion, now.label) == 1.0
        assert label_matches(parse_calls(completion), now.label)  # the probe's matcher
    (row,) = training_rows([now], load_renderer("smollm2-135m-instruct"), max_prompt_tokens=1024).rows
    assert Label.model_validate_json(row["label"]) == now.label  # the dataset's label column keeps it
    assert ToolCallReward("binary")(completions=[answer], label=[row["label"]]) == [1.0]

    run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None)  # applied once
    assert _labels(verify_ws)["Weather in Oslo?"].label_version == 2


def test_exact_labels_are_never_judged_and_never_changed(verify_ws, fake_openai):
    fake_openai.responder = right_judge  # it would call the planted labels wrong
    cases = PLANTED + GENUINE + BOTH
    with Store.open(verify_ws / DB_FILE) as store:
        store.upsert_samples([s.model_copy(update={"exact": True}) for s, _ in cases])
    outcome = run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None)
    assert fake_openai.requests == []  # not one request reached the judge
    assert outcome.judged == 7 and outcome.applied == {"PRED_WRONG": 7}
    samples = _labels(verify_ws)
    with Store.open(verify_ws / DB_FILE) as store:
        for sample, _ in cases:
            now = samples[sample.messages[-1].content]
            assert now.label == sample.label and now.label_version == 1 and now.active
            assert store.label_history(sample.id) == []
        verdicts = store.verdicts(1)
        assert store.agent_calls(round=1) == []
    assert all(v.verdict == "PRED_WRONG" and v.basis == "rule" and v.judge_model == "" and v.corrected_label is None
               and "exact by construction" in v.rationale for v in verdicts)


def test_without_the_judge_every_mismatch_is_the_models_error(verify_ws, fake_openai):
    fake_openai.responder = right_judge
    outcome = run_verify(verify_ws, load_config(verify_ws), 1, log=lambda *_: None, use_judge=False)
    assert fake_openai.requests == [] and outcome.judged == 7 and outcome.applied == {"PRED_WRONG": 7}
    samples = _labels(verify_ws)
    assert all(samples[s.messages[-1].content].label == s.label and samples[s.messages[-1].content].active
               for s, _ in PLANTED + GENUINE + BOTH)
    with Store.open(verify_ws / DB_FILE) as store:
        verdicts = store.verdicts(1)
    assert all(v.verdict == "PRED_WRONG" and v.basis == "rule" and v.judge_model == "" and v.rationale == NO_JUDGE
               for v in verdicts)


# -- the nodes alone ----------------------------------------------------------------------------


def test_the_apply_node_alone_applies_the_verdicts_on_record_and_calls_the_pause_point(verify_ws):
    """A node called alone, with a state and its context given as LangGraph's runtime: the verdicts
    are written here by hand, no judge asked; applying them twice changes nothing."""
    from datetime import date

    from langgraph.runtime import Runtime

    from looptool.loop.verify import VerifyContext, apply
    from looptool.schema import Verdict

    ended: list[str] = []
    with Store.open(verify_ws / DB_FILE) as store:
        for sample, _ in PLANTED:
            store.upsert_verdict(Verdict(sample_id=sample.id, round=1, verdict="LABEL_WRONG", rationale="r"))
        ctx = VerifyContext(verify_ws, load_config(verify_ws), store, date.today().isoformat(), lambda *_: None,
                            on_applied=lambda: ended.append("applied"))
        assert apply({"round": 1}, Runtime(context=ctx)) == {"applied": {"LABEL_WRONG": 4}}
        assert apply({"round": 1}, Runtime(context=ctx)) == {"applied": {"LABEL_WRONG": 4}}
    assert ended == ["applied", "applied"]
    samples = _labels(verify_ws)
    for sample, probe in PLANTED:
        now = samples[sample.messages[-1].content]
        assert now.label == Label(calls=probe.prediction) and now.label_version == 2


def test_inside_the_loop_the_nodes_make_their_context_from_the_loops(verify_ws):
    """The loop runs this graph as its subgraph with the loop's context: the arm without JGLV asks
    no judge, and the end of apply is the loop's pause point named "verify"."""
    from langgraph.runtime import Runtime

    from looptool.loop.state import LoopContext
    from looptool.loop.verify import VerifyContext, verify_context

    paused: list[str] = []
    with Store.open(verify_ws / DB_FILE) as store:
        for arm, use_judge in (("loop", True), ("no-jglv", False)):
            loop_ctx = LoopContext(verify_ws, load_config(verify_ws), store, arm=arm, log=lambda *_: None,
                                   pause_point=paused.append)
            ctx = verify_context(Runtime(context=loop_ctx))
            assert isinstance(ctx, VerifyContext) and ctx.use_judge is use_judge
            assert (ctx.workspace, ctx.store, ctx.today) == (verify_ws, store, loop_ctx.today)
            ctx.on_applied()
        alone = VerifyContext(verify_ws, load_config(verify_ws), store, "2026-01-01")
        assert verify_context(Runtime(context=alone)) is alone
    assert paused == ["verify", "verify"]
