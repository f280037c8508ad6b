"""A reasoning policy (`[policy] thinking`) with a Qwen3-style chat template of our own
(tests/qwen3_style_template.jinja): prompts rendered with `enable_thinking` on and off, training
labels written as the template writes an assistant turn, the reward and the probe reading
`<think>...</think><tool_call>...`, evaluation asking with the same switch and budget, and a budget
too small for reasoning refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from looptool.config import DB_FILE, ConfigError, WorkspaceConfig, dump_config, load_config
from looptool.eval.heldout import run_heldout
from looptool.loop.probe import probe_round
from looptool.policy.prompt import load_renderer, system_message
from looptool.schema import Label, Message, Round, Sample, ToolCall, ToolSpec
from looptool.serving.target import EvalTarget
from looptool.store import Store
from looptool.training.dataset import training_rows
from looptool.training.reward import reward_function
from tests.fakes import chat_reply
from tests.tiny_model import build_thinking_model

TOOL = ToolSpec(name="get_weather", description="Weather of a city.",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
PARIS = Label(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
REASONED = f"<think>The user wants the weather in Paris; get_weather takes a city.</think>\n{CALL}"
EMPTY_THINK = "<think>\n\n</think>\n\n"
ASSISTANT = "<|im_start|>assistant\n"


def _sample(user: str = "weather in Paris?", label: Label = PARIS, split: str = "train") -> Sample:
    return Sample(messages=[system_message([TOOL]), Message(role="user", content=user)], tools=[TOOL], label=label,
                  split=split, scenario="single")


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory) -> Path:
    return build_thinking_model(tmp_path_factory.mktemp("qwen3-style") / "model")


def write(ws: Path, text: str) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "looptool.toml").write_text(text)


# -- config ---------------------------------------------------------------------------------------


def test_thinking_is_off_by_default_and_a_policy_setting_only(tmp_path):
    assert WorkspaceConfig().policy.thinking == "off"
    write(tmp_path, "[generator]\nthinking = 'on'\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "generator.thinking: only [policy] takes thinking" in str(info.value) and "\n" not in str(info.value)


def test_a_budget_too_small_for_reasoning_is_refused_at_load(tmp_path):
    write(tmp_path, "[policy]\nthinking = 'on'\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert "train.max_completion_tokens (256) is below 512" in message and "\n" not in message
    assert message.startswith(str(tmp_path / "looptool.toml"))


def test_thinking_raises_the_eval_budget_to_the_training_budget(tmp_path):
    write(tmp_path, "[policy]\nthinking = 'on'\n[train]\nmax_completion_tokens = 1024\n")
    config = load_config(tmp_path)  # policy, generator and judge still share one server
    assert config.policy.thinking == "on" and config.answer_tokens() == 1024
    config.eval.max_tokens = 2048
    assert config.answer_tokens() == 2048  # never less than training's, more when asked
    config.policy.thinking = "off"
    assert config.answer_tokens() == 2048
    config.eval.max_tokens = 100
    assert config.answer_tokens() == 100
    text = dump_config(load_config(tmp_path))
    assert text.count("thinking") == 1 and 'thinking = "on"' in text  # written under [policy] only


# -- rendering, training rows, reward ---------------------------------------------------------------


@pytest.mark.slow
def test_the_template_renders_the_generation_prompt_with_thinking_on_and_off(thinking_model):
    off = load_renderer(str(thinking_model))
    on = load_renderer(str(thinking_model), thinking="on")
    assert off.thinking_switch and off.native_tools
    messages = _sample().messages
    prompt_off, prompt_on = off.render(messages, [TOOL]), on.render(messages, [TOOL])
    assert prompt_off == prompt_on + EMPTY_THINK
    assert prompt_on.endswith("<|im_start|>user\nweather in Paris?<|im_end|>\n" + ASSISTANT)
    assert '# Tools' in prompt_on and '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt_on
    assert off.count_tokens(messages, [TOOL]) > on.count_tokens(messages, [TOOL])


@pytest.mark.parametrize("thinking", ["off", "on"])
def test_training_rows_answer_as_the_template_writes_an_assistant_turn(thinking_model, thinking):
    renderer = load_renderer(str(thinking_model), thinking=thinking)
    sample = _sample()
    row = training_rows([sample], renderer, max_prompt_tokens=1024).rows[0]
    # With thinking off the empty block is already in the prompt; with it on, the label carries it.
    assert row["completion"] == (CALL if thinking == "off" else EMPTY_THINK + CALL)
    assert row["prompt"].endswith(EMPTY_THINK if thinking == "off" else ASSISTANT)
    turn = renderer.tokenizer.apply_chat_template(
        [{"role": "user", "content": "weather in Paris?"}, {"role": "assistant", "content": CALL}],
        tools=[{"type": "function", "function": TOOL.model_dump(exclude={"returns"})}], tokenize=False)
    assert row["prompt"] + row["completion"] + "<|im_end|>\n" == turn  # the template's own assistant turn
    assert reward_function("binary")(completions=[row["completion"]], label=[row["label"]]) == [1.0]


def test_the_reward_reads_the_call_after_the_reasoning():
    label = PARIS.model_dump_json()
    wrong = REASONED.replace("Paris", "Rome")
    cut = "<think>The user wants the weather in"  # reasoning cut off by the budget: no answer
    assert reward_function("binary")(completions=[REASONED, wrong, cut], label=[label] * 3) == [1.0, 0.0, 0.0]


# -- probing and evaluation against a scripted server ------------------------------------------------


def _completion(text: str, body: dict) -> dict:
    return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}


@pytest.mark.slow
@pytest.mark.parametrize("thinking", ["on", "off"])
def test_a_reasoned_answer_is_a_correct_probe_asked_with_the_training_budget(workspace, fake_openai, thinking_model,
                                                                               thinking):
    budget = 1024 if thinking == "on" else 300
    (workspace / "looptool.toml").write_text(
        f"[train]\nmodel = '{thinking_model}'\nmax_completion_tokens = {budget}\n\n[eval]\nmax_tokens = 64\n\n"
        f"[policy]\nkind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\n"
        f"thinking = '{thinking}'\n")
    (workspace / "adapters" / "round-1").mkdir(parents=True)
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples([_sample()])
        store.upsert_round(Round(n=1, status="running", adapter_path="adapters/round-1"))
    fake_openai.responder = lambda path, body: (200, {} if path.endswith("_lora_adapter") else
                                                _completion(REASONED, body))
    summary = probe_round(workspace, load_config(workspace), 1, log=lambda line: None)
    assert (summary.progress.done, summary.progress.passed) == (1, 1)
    [body] = [b for p, b in fake_openai.requests if p.endswith("/completions")]
    assert body["max_tokens"] == budget  # [train] max_completion_tokens, not [eval] max_tokens
    assert body["prompt"].endswith(ASSISTANT if thinking == "on" else ASSISTANT + EMPTY_THINK)
    with Store.open(workspace / DB_FILE) as store:
        [probe] = store.probes(1)
    assert probe.correct and probe.prediction == PARIS.calls


def test_evaluation_asks_a_thinking_endpoint_policy_with_the_switch_and_the_training_budget(workspace, fake_openai):
    (workspace / "looptool.toml").write_text(
        "[train]\nmax_completion_tokens = 1024\n\n"
        f"[policy]\nkind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\nthinking = 'on'\n")
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples([_sample(split="heldout")])
    fake_openai.responder = lambda path, body: (200, chat_reply(REASONED))
    config = load_config(workspace)
    run_id, progress = run_heldout(workspace, config, EvalTarget(fake_openai.endpoint, "m", 0, None))
    assert (progress.done, progress.passed) == (1, 1)
    [(path, body)] = fake_openai.requests
    assert path.endswith("/chat/completions") and body["max_tokens"] == 1024
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    with Store.open(workspace / DB_FILE) as store:
        run = next(r for r in store.eval_runs() if r["id"] == run_id)
    assert run["settings"] == {"max_tokens": 1024, "temperature": 0.0, "thinking": "on"}
