"""The judge agent against the scripted server: the order of the two answers is drawn per vote
and the verdict mapped back, votes are counted, and unreadable predictions skip the judge."""

from __future__ import annotations

import asyncio
import json

from looptool.agents.judge import check_label, judge_sample, label_first, prediction_label, unmap
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Probe, Sample, ToolCall, ToolSpec
from tests.fakes import chat_reply

TOOL = ToolSpec(name="get_weather", description="Weather of a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _case(user_city: str, label_city: str, predicted_city: str, round: int = 1) -> tuple[Sample, Probe]:
    sample = Sample(messages=[system_message([TOOL]), Message(role="user", content=f"Weather in {user_city}?")],
                    tools=[TOOL], label=Label(calls=[ToolCall(name="get_weather", arguments={"city": label_city})]))
    probe = Probe(sample_id=sample.id, round=round, correct=False, raw="...",
                  prediction=[ToolCall(name="get_weather", arguments={"city": predicted_city})])
    return sample, probe


def right_judge(path: str, body: dict):
    """A judge that is right: the answer whose city is not the one the user asked for is wrong."""
    prompt = body["messages"][-1]["content"]
    asked = prompt.split("User: Weather in ")[1].split("?")[0]
    first = prompt.split("Answer 1:\n")[1].split("\n\nAnswer 2:")[0]
    second = prompt.split("Answer 2:\n")[1]
    ok1, ok2 = f'"{asked}"' in first, f'"{asked}"' in second
    verdict = {(True, True): "BOTH_OK", (False, False): "BOTH_WRONG", (False, True): "ANSWER_1_WRONG",
               (True, False): "ANSWER_2_WRONG"}[(ok1, ok2)]
    return 200, chat_reply(json.dumps({"analysis": f"the user asked for {asked}", "verdict": verdict}))


def test_a_right_judge_finds_planted_wrong_labels_in_either_order(fake_openai):
    fake_openai.responder = right_judge
    planted = [_case(city, "Springfield", city) for city in ("Paris", "Oslo", "Lima", "Quito", "Accra", "Hanoi")]
    genuine = [_case(city, city, "Springfield") for city in ("Rome", "Cairo", "Perth", "Seoul")]
    orders = {label_first(s.id, 1, 0) for s, _ in planted + genuine}
    assert orders == {True, False}, "the cases should show the label both first and second"
    for sample, probe in planted:
        verdict, results = asyncio.run(judge_sample(fake_openai.endpoint, sample, probe, date="2026-11-23"))
        assert verdict.verdict == "LABEL_WRONG" and verdict.corrected_label == Label(calls=probe.prediction)
        assert len(results) == 1 and verdict.rationale.startswith("the user asked for")
    for sample, probe in genuine:
        verdict, _ = asyncio.run(judge_sample(fake_openai.endpoint, sample, probe, date="2026-11-23"))
        assert verdict.verdict == "PRED_WRONG" and verdict.corrected_label is None
    prompt = fake_openai.requests[0][1]["messages"][-1]["content"]
    assert "Today is 2026-11-23." in prompt and "get_weather(city: string)" in prompt


def test_unmap_and_unreadable_predictions(fake_openai):
    assert unmap("ANSWER_1_WRONG", True) == "LABEL_WRONG" and unmap("ANSWER_1_WRONG", False) == "PRED_WRONG"
    assert unmap("ANSWER_2_WRONG", True) == "PRED_WRONG" and unmap("ANSWER_2_WRONG", False) == "LABEL_WRONG"
    assert unmap("BOTH_OK", False) == "BOTH_OK"
    sample, _ = _case("Paris", "Paris", "Paris")
    broken = Probe(sample_id=sample.id, round=1, correct=False, raw='<tool_call>{"name": "get_weather", ')
    verdict, results = asyncio.run(judge_sample(fake_openai.endpoint, sample, broken, date="2026-11-23"))
    assert verdict.verdict == "PRED_WRONG" and results == [] and fake_openai.requests == []
    assert verdict.basis == "rule" and verdict.judge_model == ""
    text = Probe(sample_id=sample.id, round=1, correct=False, raw="Which city?")
    assert prediction_label(text) == Label(text="Which city?")


def test_votes_take_the_majority_and_ties_change_least(fake_openai):
    sample, probe = _case("Paris", "Springfield", "Paris")
    answers = iter(["ANSWER_1_WRONG", "ANSWER_2_WRONG", "ANSWER_1_WRONG"])  # positional: mapped per vote

    def respond(path, body):
        return 200, chat_reply(json.dumps({"analysis": "a", "verdict": next(answers)}))

    fake_openai.responder = respond
    verdict, results = asyncio.run(judge_sample(fake_openai.endpoint, sample, probe, date="d", votes=3,
                                                temperature=0.7))
    expected = [unmap(v, label_first(sample.id, 1, i)) for i, v in enumerate(
        ["ANSWER_1_WRONG", "ANSWER_2_WRONG", "ANSWER_1_WRONG"])]
    tally = {k: expected.count(k) for k in expected}
    assert len(results) == 3 and max(tally.values()) >= 2  # three votes, two kinds: a strict majority
    assert verdict.verdict == max(tally, key=tally.get)
    assert verdict.rationale.startswith("[")
    answers = iter(["BOTH_OK", "BOTH_WRONG"])  # a tie: BOTH_OK changes less than BOTH_WRONG
    verdict, _ = asyncio.run(judge_sample(fake_openai.endpoint, sample, probe, date="d", votes=2))
    assert verdict.verdict == "BOTH_OK"


def test_a_judge_that_never_answers_validly_leaves_the_label_and_says_so(fake_openai):
    fake_openai.responder = lambda path, body: (200, chat_reply('{"analysis": "x", "verdict": "MAYBE"}'))
    sample, probe = _case("Paris", "Springfield", "Paris")
    verdict, results = asyncio.run(judge_sample(fake_openai.endpoint, sample, probe, date="d", max_attempts=2,
                                                judge_model="j"))
    assert len(fake_openai.requests) == 2 and len(results) == 1 and results[0].value is None
    assert verdict.verdict == "PRED_WRONG" and verdict.corrected_label is None and verdict.judge_model == "j"
    assert verdict.basis == "no_answer" and "no valid verdict after 2 attempts" in verdict.rationale


def test_an_exact_label_is_never_judged(fake_openai):
    fake_openai.responder = right_judge  # would call the label wrong: the user asked for Paris
    sample, probe = _case("Paris", "Springfield", "Paris")
    exact = sample.model_copy(update={"exact": True})
    verdict, results = asyncio.run(judge_sample(fake_openai.endpoint, exact, probe, date="d", judge_model="j"))
    assert fake_openai.requests == [] and results == []
    assert verdict.verdict == "PRED_WRONG" and verdict.basis == "rule" and verdict.judge_model == ""
    assert verdict.corrected_label is None and "exact by construction" in verdict.rationale


def test_judge_calls_carry_their_prompt_for_the_trace(fake_openai):
    from looptool.agents.base import trace_rows

    fake_openai.responder = lambda path, body: (200, chat_reply('{"analysis": "fine", "correct": true}'))
    sample, _ = _case("Paris", "Paris", "Paris")
    result = asyncio.run(check_label(fake_openai.endpoint, sample, date="d"))
    assert result.value == {"analysis": "fine", "correct": True}
    (row,) = trace_rows(result)
    assert row["prompt"] == result.prompt == fake_openai.requests[0][1]["messages"][-1]["content"]
    assert 'get_weather({"city": "Paris"})' in row["prompt"] and row["status"] == "ok"
