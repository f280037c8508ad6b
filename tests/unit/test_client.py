"""Control flow of the model client against a scripted OpenAI-compatible server (no model).

The real server is exercised in tests/integration; here we check retries, error messages and
output validation, which a real model cannot be made to fail on demand.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from looptool.serving.client import (
    ModelOutputError,
    TokenLogprob,
    check_endpoint,
    load_lora,
    perplexity,
    prompt_logprobs,
    structured_call,
)
from looptool.serving.server import ServingError
from tests.fakes import chat_reply


@pytest.fixture
def fake(fake_openai, monkeypatch):
    monkeypatch.setattr("looptool.serving.client.RETRY_BASE_DELAY_S", 0.01)
    return fake_openai


class City(BaseModel):
    city: str
    population: int


def test_structured_call_validates_and_sends_the_schema(fake):
    fake.replies.append((200, chat_reply('{"city": "Paris", "population": 2100000}')))
    answer = structured_call(fake.endpoint, [("user", "a city")], City)
    assert answer == City(city="Paris", population=2100000)
    path, body = fake.requests[0]
    assert path == "/v1/chat/completions"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["city", "population"]


@pytest.mark.parametrize("content", ["not json", '{"city": "Paris"}', '{"city": 1, "population": "many"}'])
def test_structured_call_rejects_bad_output(fake, content):
    fake.replies.append((200, chat_reply(content)))
    with pytest.raises(ModelOutputError, match="does not match City"):
        structured_call(fake.endpoint, [("user", "a city")], City)


def test_5xx_is_retried_then_succeeds(fake):
    entries = [None, {"5": {"logprob": -1.0, "rank": 1, "decoded_token": "a"}}, {"6": {"logprob": -3.0, "rank": 4, "decoded_token": "b"}}]
    fake.replies += [(503, {"error": "busy"}), (502, {"error": "busy"}), (200, {"choices": [{"prompt_logprobs": entries}]})]
    out = prompt_logprobs(fake.endpoint, "ab")
    assert out == [TokenLogprob("", None), TokenLogprob("a", -1.0), TokenLogprob("b", -3.0)]
    assert len(fake.requests) == 3
    assert perplexity(out) == pytest.approx(2.718281828 ** 2)


def test_4xx_fails_at_once_with_the_reason(fake):
    fake.replies.append((404, {"error": "no such adapter path"}))
    with pytest.raises(ServingError, match="loading LoRA adapter a failed: HTTP 404 .*no such adapter path"):
        load_lora(fake.endpoint, "a", "/nowhere")
    assert len(fake.requests) == 1


def test_retries_are_bounded(fake):
    fake.replies += [(500, {})] * 10
    with pytest.raises(ServingError, match="HTTP 500"):
        prompt_logprobs(fake.endpoint, "ab")
    assert len(fake.requests) == 4  # 1 try + 3 retries


def test_check_endpoint_lists_models(fake):
    assert check_endpoint(fake.endpoint) == ["m", "adapter"]


def test_an_endpoint_role_resolves_without_starting_anything(fake, tmp_path, monkeypatch):
    from looptool.config import EndpointModel, WorkspaceConfig
    import asyncio

    from looptool.serving.client import acomplete, resolve_endpoint

    monkeypatch.setenv("FAKE_KEY", "sk-test")
    config = WorkspaceConfig(
        generator=EndpointModel(base_url=fake.endpoint.base_url, model="gen-model", api_key_env="FAKE_KEY")
    )
    endpoint = resolve_endpoint(config, "planner", tmp_path)  # planner falls back to generator
    assert (endpoint.base_url, endpoint.model, endpoint.api_key) == (fake.endpoint.base_url, "gen-model", "sk-test")
    fake.replies.append((200, chat_reply("hello")))
    user = resolve_endpoint(config, "user", tmp_path)
    assert asyncio.run(acomplete(user, [{"role": "user", "content": "hi"}])).content == "hello"
    assert fake.requests[-1][1]["model"] == "gen-model"
    assert not (tmp_path / "servers").exists()


def test_async_calls_work_across_event_loops(fake_openai):
    # An async HTTP client shared by the process is bound to the first loop; a later asyncio.run (a
    # second seed run in one process) must still reach the server.
    import asyncio

    from looptool.serving.client import acomplete_json
    from tests.fakes import json_schema_responder

    fake_openai.responder = json_schema_responder()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    for _ in range(3):
        completion = asyncio.run(acomplete_json(fake_openai.endpoint, [("user", "hi")], schema, name="x"))
        assert "a" in json.loads(completion.content) and completion.latency_ms > 0
