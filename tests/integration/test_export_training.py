"""An exported dataset is training input, on the tiny model (tests/tiny_model.py): read back into a
workspace it trains with LoopTool's own SFT and GRPO stages on exactly the rows the source trained
on, and TRL's trainers take it as it is -- SFT on `messages` + `tools` with the exported chat
template (the same token ids as LoopTool's prompt and answer), GRPO on prompts rendered by that
template with LoopTool's reward reading the `label` column."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE, load_config, save_config
from looptool.export.chat_template import with_looptool_template
from looptool.export.data import sample_from_row
from looptool.policy.prompt import PromptRenderer, system_message
from looptool.schema import Label, Message, Round, Sample, ToolCall, ToolSpec
from looptool.store import Store
from looptool.training.dataset import training_rows
from tests.integration.test_training_trl import length_parity_reward
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

WEATHER = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
BOOK = ToolSpec(name="book_table", description="Book a table.", parameters={
    "type": "object", "properties": {"restaurant": {"type": "string"}, "people": {"type": "integer"}},
    "required": ["restaurant", "people"]})
CITIES = ("Paris", "Oslo", "Lima", "Rome", "Kyiv", "Quito")


def samples() -> list[Sample]:
    out = []
    for i, city in enumerate(CITIES):
        label = Label(calls=[ToolCall(name="get_weather", arguments={"city": city})]) if i % 3 else Label(text="Which city?")
        out.append(Sample(messages=[system_message([WEATHER]), Message(role="user", content=f"Weather in {city}? ({i})")],
                          tools=[WEATHER], label=label, scenario="single"))
    out.append(Sample(  # a conversation with a call and its result before the labelled turn
        messages=[system_message([WEATHER, BOOK]), Message(role="user", content="Weather in Rome, then book Nona's."),
                  Message(role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})]),
                  Message(role="tool", name="get_weather", tool_call_id="call_1_0", content='{"temp": 21}'),
                  Message(role="assistant", content="21 degrees. For how many people?"),
                  Message(role="user", content="Two.")],
        tools=[WEATHER, BOOK], label=Label(calls=[ToolCall(name="book_table", arguments={"restaurant": "Nona's", "people": 2})]),
        scenario="sequential"))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def make_workspace(path: Path, tiny: Path) -> Path:
    assert CliRunner().invoke(app, ["init", str(path)]).exit_code == 0
    config = load_config(path)
    config.train = config.train.model_copy(update=dict(
        model=str(tiny), num_generations=4, prompts_per_step=2, max_completion_tokens=12, save_steps=10,
        learning_rate=0.01, lora_r=8, target_modules=["q_proj", "v_proj"], sft_max_steps=2, sft_batch_size=2))
    save_config(path, config)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny) -> tuple[Path, Path]:
    """A workspace whose round 1 trained on `samples()`, and that round's data exported as a
    Hugging Face dataset."""
    root = tmp_path_factory.mktemp("export-training")
    source = make_workspace(root / "source", tiny)
    with Store.open(source / DB_FILE) as store:
        store.upsert_samples(samples())
        store.upsert_round(Round(n=1, status="done", data_ids=[s.id for s in samples()]))
    result = CliRunner().invoke(app, ["export", "data", str(root / "data"), "-w", str(source), "--round", "1"])
    assert result.exit_code == 0, result.output
    return source, root / "data"



def test_an_exported_dataset_trains_with_looptools_own_stages(exported, tiny, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from looptool.training.grpo import run_grpo
    from looptool.training.sft import run_sft

    source, data = exported
    dataset = load_from_disk(str(data))
    read_back = [sample_from_row(row) for row in dataset]
    target = make_workspace(tmp_path / "target", tiny)
    with Store.open(target / DB_FILE) as store:
        store.upsert_samples(read_back)
    # The trainer sees the rows the source's round 1 trained on: the same prompts and answers.
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(str(tiny)))
    budget = load_config(target).train.max_prompt_tokens
    with Store.open(source / DB_FILE) as store:
        original = [store.get_sample(i) for i in store.get_round(1).data_ids]
    assert training_rows(read_back, renderer, budget).rows == training_rows(original, renderer, budget).rows

    config = load_config(target)
    sft = run_sft(target, config, 1, max_steps=2)
    assert sft.steps == 2 and sft.rows == len(samples())
    grpo = run_grpo(target, config, 1, max_steps=2, reward_fn=length_parity_reward)
    assert grpo.steps == 2 and (grpo.adapter / "adapter_model.safetensors").is_file()
    with Store.open(target / DB_FILE) as store:
        steps = store.train_steps(1, "grpo")
    assert [s["step"] for s in steps] == [1, 2] and all(math.isfinite(s["loss"]) for s in steps)
    assert any(s["frac_reward_zero_std"] < 1 for s in steps)


def test_trl_trains_on_the_exported_rows_as_they_are(exported, tiny, tmp_path):
    from datasets import load_from_disk
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    from looptool.training.reward import reward_function

    _, data = exported
    dataset = load_from_disk(str(data))
    tokenizer = with_looptool_template(AutoTokenizer.from_pretrained(str(tiny)))
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(str(tiny)))
    common = dict(report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True,
                  dataloader_num_workers=0)
    lora = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")

    # SFT: TRL's conversational format, rendered by the exported template into LoopTool's text.
    sft = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(str(tiny)), processing_class=tokenizer, peft_config=lora,
                     train_dataset=dataset.select_columns(["messages", "tools"]),
                     args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
                                    max_length=1024, **common))
    for row, tokenized in zip(dataset, sft.train_dataset, strict=True):
        s = sample_from_row(row)
        text = renderer.render([*s.messages, Message(role="assistant", content=s.label.text, tool_calls=s.label.calls)],
                               s.tools, add_generation_prompt=False)
        assert tokenized["input_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"], s.id
    sft.train()
    assert sft.state.global_step == 2 and all(math.isfinite(h["loss"]) for h in sft.state.log_history if "loss" in h)

    # GRPO: the prompt rendered by the exported template, LoopTool's reward reading the label column.
    prompts = dataset.map(lambda row: {"prompt": tokenizer.apply_chat_template(
        row["messages"][:-1], tools=row["tools"], add_generation_prompt=True, tokenize=False)})
    for row, s in zip(prompts, map(sample_from_row, dataset), strict=True):
        assert row["prompt"] == renderer.render(s.messages, s.tools)
    grpo = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(tiny)), processing_class=tokenizer,
                       peft_config=lora, reward_funcs=reward_function("partial"),
                       train_dataset=prompts.select_columns(["prompt", "label"]),
                       args=GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=1, num_generations=2,
                                       per_device_train_batch_size=2, max_completion_length=8, **common))
    grpo.train()
    logged = [h for h in grpo.state.log_history if "reward" in h]
    assert grpo.state.global_step == 1 and logged and all(0 <= h["reward"] <= 1 for h in logged)
