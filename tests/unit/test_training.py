"""Unit tests of the training plumbing that needs no model: the renderer's choices and trimming
(with a stand-in tokenizer), training rows, adapter placement and round bookkeeping, the warm-start
rule and the subprocess runner's failure reporting. Real TRL runs are in
tests/integration/test_training_trl.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from looptool.calls import format_calls
from looptool.config import TrainConfig, WorkspaceConfig, save_config
from looptool.policy.prompt import PromptRenderer, system_message
from looptool.schema import Label, Message, Round, Sample, ToolCall, ToolSpec
from looptool.store import Store
from looptool.training import rounds
from looptool.training.dataset import training_rows
from looptool.training.grpo import grpo_args
from looptool.training.sft import warm_start_due, warm_start_wanted
from looptool.training.stage import TrainingError

TOOL = ToolSpec(name="get_weather", description="Weather.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


class WordTokenizer:
    """A stand-in tokenizer: a chat template that lists messages, one token per word."""

    def __init__(self, native_tools: bool) -> None:
        self.chat_template = "{% if tools %}native{% endif %}" if native_tools else "{{ messages }}"
        self.calls: list[dict] = []

    def apply_chat_template(self, chat, tokenize=False, add_generation_prompt=True, **kwargs):
        self.calls.append({"chat": chat, **kwargs})
        tools = "TOOLS " + json.dumps(kwargs["tools"]) + "\n" if "tools" in kwargs else ""
        return tools + "".join(f"<{m['role']}>\n{m['content']}\n" for m in chat) + ("<assistant>\n" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def history(*turns: str) -> list[Message]:
    out = [system_message([TOOL])]
    for i, text in enumerate(turns):
        out.append(Message(role="user" if i % 2 == 0 else "assistant", content=text))
    return out


def test_fallback_template_gets_our_system_prompt_and_native_gets_tools():
    fallback = PromptRenderer(WordTokenizer(native_tools=False))
    text = fallback.render(history("weather in Paris?"), [TOOL], system_note="Be brief.")
    assert "<tool_call>" in text and '"name":"get_weather"' in text and "Be brief." in text
    assert text.count("<system>") == 1 and "TOOLS" not in text
    tokenizer = WordTokenizer(native_tools=True)
    native = PromptRenderer(tokenizer)
    assert native.native_tools
    text = native.render(history("weather in Paris?"), [TOOL])
    assert tokenizer.calls[-1]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather.", "parameters": TOOL.parameters}}]
    assert "<system>" not in text  # the template writes the tool prompt itself


def test_fit_drops_the_oldest_exchanges_and_gives_up_when_the_last_does_not_fit():
    renderer = PromptRenderer(WordTokenizer(native_tools=False))
    messages = history("one two three " * 20, "ok", "last question")
    full = renderer.count_tokens(messages, [TOOL])
    assert renderer.fit(messages, [TOOL], full) == messages[1:]
    trimmed = renderer.fit(messages, [TOOL], full - 10)
    assert [m.content for m in trimmed] == ["last question"]
    assert renderer.fit(messages, [TOOL], 5) is None


def test_training_rows_render_prompts_and_labels_and_count_what_does_not_fit():
    renderer = PromptRenderer(WordTokenizer(native_tools=False))
    call = Label(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
    samples = [Sample(messages=history("weather in Paris?"), tools=[TOOL], label=call),
               Sample(messages=history("hi"), tools=[TOOL], label=Label(text="Hello!")),
               Sample(messages=history("word " * 500), tools=[TOOL], label=Label(text="Too long."))]
    rows = training_rows(samples, renderer, max_prompt_tokens=200)
    assert rows.too_long == 1 and [r["sample_id"] for r in rows.rows] == [samples[0].id, samples[1].id]
    assert rows.rows[0]["completion"] == format_calls(call.calls, "tool_call_tags")
    assert rows.rows[1]["completion"] == "Hello!" and Label.model_validate_json(rows.rows[0]["label"]) == call
    assert rows.rows[0]["prompt"].endswith("<assistant>\n")


def test_grpo_gets_the_configured_schedule_and_weight_decay():
    args = grpo_args(TrainConfig())
    assert (args["lr_scheduler_type"], args["weight_decay"]) == ("constant", 0.01)  # the paper's schedule
    args = grpo_args(TrainConfig(lr_scheduler="cosine", weight_decay=0.0, max_completion_tokens=1024), max_steps=3)
    assert (args["lr_scheduler_type"], args["weight_decay"], args["max_completion_length"], args["max_steps"]) == (
        "cosine", 0.0, 1024, 3)


def test_enable_thinking_is_passed_only_to_templates_that_read_it():
    plain = WordTokenizer(native_tools=False)
    PromptRenderer(plain, thinking="on").render(history("hi"), [TOOL])
    assert "enable_thinking" not in plain.calls[-1]
    switched = WordTokenizer(native_tools=False)
    switched.chat_template += "{% if enable_thinking %}{% endif %}"
    PromptRenderer(switched, thinking="on").render(history("hi"), [TOOL])
    PromptRenderer(switched).render(history("hi"), [TOOL])
    assert [c["enable_thinking"] for c in switched.calls] == [True, False]


def test_warm_start_rule():
    config = WorkspaceConfig()
    assert warm_start_wanted(config)  # the embedded model cannot call tools yet
    config.train.warm_start = "off"
    assert not warm_start_wanted(config)
    config.train.warm_start, config.train.model = "auto", "/models/Qwen3-8B"
    assert not warm_start_wanted(config)
    config.train.warm_start = "on"
    assert warm_start_wanted(config)


def test_warm_start_due_only_before_round_1_has_one(tmp_path):
    config = WorkspaceConfig()  # the embedded model: it wants a warm start
    assert warm_start_due(tmp_path, config, 1)
    assert not warm_start_due(tmp_path, config, 2)  # later rounds continue from the previous adapter
    (tmp_path / "adapters" / "round-1-sft").mkdir(parents=True)
    assert not warm_start_due(tmp_path, config, 1)  # made already (the loop or 'train sft' ran it)
    config.train.warm_start = "off"
    assert not warm_start_due(tmp_path / "other", config, 1)


def test_start_adapter_and_stage_records(tmp_path):
    ws = tmp_path
    with Store.create(ws / "looptool.db") as store:
        assert rounds.start_adapter(ws, store, 1, "grpo") is None  # fresh
        assert rounds.start_adapter(ws, store, 1, "sft") is None
        store.upsert_round(Round(n=1, adapter_path="adapters/round-1"))
        assert rounds.start_adapter(ws, store, 2, "grpo") == ws / "adapters" / "round-1"
        rounds.adapter_dir(ws, 2, "sft").mkdir(parents=True)
        assert rounds.start_adapter(ws, store, 2, "grpo") == ws / "adapters" / "round-2-sft"  # the warm start wins
        rounds.record_stage(store, ws, 2, "sft", {"steps": 4})
        rounds.record_stage(store, ws, 2, "grpo", {"steps": 9})
        info = store.get_round(2)
    assert info.adapter_path == "adapters/round-2"
    assert info.metrics.model_dump() == {"sft": {"steps": 4}, "grpo": {"steps": 9}}


class FakeModel:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "adapter_model.safetensors").write_text("new")
        if self.fail:
            raise OSError("disk full")


def test_save_adapter_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "adapters" / "round-1"
    target.mkdir(parents=True)
    (target / "adapter_model.safetensors").write_text("old")
    with pytest.raises(OSError):
        rounds.save_adapter(FakeModel(fail=True), target)
    assert (target / "adapter_model.safetensors").read_text() == "old"  # the old adapter is untouched
    rounds.save_adapter(FakeModel(), target)
    assert (target / "adapter_model.safetensors").read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["round-1"]  # no temporary left behind


def test_stage_process_failure_shows_exit_code_and_last_lines(tmp_path, monkeypatch):
    from looptool.training import process

    (tmp_path / "logs").mkdir()
    save_config(tmp_path, WorkspaceConfig())
    script = tmp_path / "boom.py"
    script.write_text("import sys\nprint('grpo step 1/3: loss 0.1')\nprint('Traceback: CUDA out of memory')\nsys.exit(3)\n")
    monkeypatch.setattr(process.sys, "executable", sys.executable)
    real_popen = process.subprocess.Popen

    def popen(cmd, **kwargs):
        return real_popen([sys.executable, str(script)], **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", popen)
    shown: list[str] = []
    with pytest.raises(TrainingError, match=r"grpo round 1 failed \(exit code 3; log .*\): grpo step 1/3: loss 0.1 \| "
                                            r"Traceback: CUDA out of memory"):
        process.run_stage(tmp_path, "grpo", 1, echo=shown.append)
    assert shown == ["grpo step 1/3: loss 0.1"]  # library noise stays in the log file
    assert "CUDA out of memory" in (tmp_path / "logs" / "train-round-1-grpo.log").read_text()


def test_stage_process_killed_by_the_kernel_says_so(tmp_path, monkeypatch):
    from looptool.training import process

    save_config(tmp_path, WorkspaceConfig())
    script = tmp_path / "oom.py"
    script.write_text("import os, signal\nprint('sft step 1/8: loss 2.0')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    real_popen = process.subprocess.Popen
    monkeypatch.setattr(process.subprocess, "Popen", lambda cmd, **kw: real_popen([sys.executable, str(script)], **kw))
    with pytest.raises(TrainingError, match=r"sft round 2 failed \(killed by signal 9, most likely out of memory"):
        process.run_stage(tmp_path, "sft", 2, echo=lambda line: None)


def test_the_merge_silences_only_bitsandbytes_kernels_notice(caplog):
    import importlib.util
    import logging

    from looptool.serving import merge

    merge.quiet_kernels_notice()
    merge.quiet_kernels_notice()  # once is enough; twice adds nothing
    logger = logging.getLogger(merge.KERNELS_NOTICE_LOGGER)
    assert logger.filters.count(merge._not_the_kernels_notice) == 1
    with caplog.at_level(logging.WARNING):
        logger.warning(merge.KERNELS_NOTICE + ": %s. Please make sure you already `pip install kernels`",
                       "No module named 'kernels'")
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]
    # The message and its logger are bitsandbytes' own (read from its source, without importing it).
    spec = importlib.util.find_spec("bitsandbytes")
    if spec is not None and spec.origin:
        source = Path(spec.origin).parent / "backends" / "cpu" / "ops.py"
        if source.is_file():
            text = source.read_text()
            assert merge.KERNELS_NOTICE in text and "logger = logging.getLogger(__name__)" in text
