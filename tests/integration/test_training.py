"""Real TRL training steps on the CPU: GRPO and SFT with LoRA on a tiny random-initialised model
built from the embedded model's config and tokenizer, checked weight by weight."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config, save_config
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.store import Store
from looptool.training.templates import system_message
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

TOOL = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CITIES = ("Paris", "Oslo", "Lima", "Rome", "Kyiv", "Quito", "Accra", "Hanoi")


def samples(n: int = 8) -> list[Sample]:
    out = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        label = Label(calls=[ToolCall(name="get_weather", arguments={"city": city})]) if i % 2 == 0 else Label(text="Which city?")
        out.append(Sample(messages=[system_message([TOOL]), Message(role="user", content=f"Weather in {city}? ({i})")],
                          tools=[TOOL], label=label, split="train", scenario="single"))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ws(tmp_path, tiny) -> Path:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    config = load_config(ws)
    config.train = config.train.model_copy(update=dict(
        model=str(tiny), num_generations=4, prompts_per_step=2, max_completion_tokens=12, save_steps=2,
        learning_rate=0.01, lora_r=8, target_modules=["q_proj", "v_proj"], sft_max_steps=4, sft_batch_size=4))
    save_config(ws, config)
    with Store.open(ws / "looptool.db") as store:
        store.upsert_samples(samples())
    return ws


def length_parity_reward(completions, **kwargs) -> list[float]:
    """Differs within a group whatever a random model writes, so every step has a gradient."""
    return [float(len(c) % 2) for c in completions]


def test_grpo_steps_change_lora_weights_only_and_log_metrics(ws, tiny):
    from looptool.training.grpo import run_grpo

    digest = _digest(tiny / "model.safetensors")
    config = load_config(ws)
    result = run_grpo(ws, config, 1, max_steps=3, reward_fn=length_parity_reward)
    assert result.steps == 3 and result.rows == 8 and not result.resumed
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)  # only adapter weights were trained and saved
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0: it moved
    base = load_file(str(tiny / "model.safetensors"))
    trained = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in result.model.state_dict().items() if "lora_" not in k}
    for name, weight in base.items():
        assert torch.equal(trained[name], weight), f"base weight {name} changed"
    with Store.open(ws / "looptool.db") as store:
        steps = store.train_steps(1, "grpo")
        info = store.get_round(1)
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:
        assert {"loss", "reward", "reward_std", "frac_reward_zero_std", "step_time_s", "peak_memory_mb"} <= set(s)
        assert s["frac_reward_zero_std"] < 1  # the rewards differed within groups
    assert info.adapter_path == "adapters/round-1" and info.metrics["grpo"]["steps"] == 3
    assert not (ws / "adapters" / "round-1-grpo.checkpoints").exists()
    assert _digest(tiny / "model.safetensors") == digest  # the base checkpoint on disk is untouched


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
